"""Reading a JSON request body safely: content type, size limit, UTF-8 JSON."""

from __future__ import annotations

import json

from fastapi import Request

from connectors.ingress.errors import ApiError, ErrorKind


async def read_json(request: Request, max_bytes: int) -> tuple[bytes, object]:
    """The raw bytes and the parsed document, or ApiError 415 / 413 / 400."""
    ctype = request.headers.get("content-type", "")
    media = ctype.split(";", 1)[0].strip().lower()
    if media != "application/json" and not (media.startswith("application/") and media.endswith("+json")):
        raise ApiError(ErrorKind.UNSUPPORTED_MEDIA_TYPE,
                       f"send the body as application/json (got {ctype or 'no content type'!r})")
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > max_bytes:
        raise ApiError(ErrorKind.BODY_TOO_LARGE, f"the body is larger than {max_bytes} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise ApiError(ErrorKind.BODY_TOO_LARGE, f"the body is larger than {max_bytes} bytes")
        chunks.append(chunk)
    raw = b"".join(chunks)
    try:
        return raw, json.loads(raw.decode("utf-8-sig"))  # 1C may write a BOM
    except UnicodeDecodeError:
        raise ApiError(ErrorKind.INVALID_JSON, "the body is not UTF-8") from None
    except json.JSONDecodeError as exc:
        raise ApiError(ErrorKind.INVALID_JSON,
                       f"the body is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
