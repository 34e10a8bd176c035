"""Reading a JSON request body safely: content type, size limit, UTF-8 JSON."""

from __future__ import annotations

import json

from fastapi import Request

from connectors.ingress.errors import ApiError, ErrorKind


def depth(doc: object) -> int:
    """How deeply arrays and objects nest in a parsed document (a scalar is 0); iterative,
    so no document can exhaust the stack here."""
    deepest, stack = 0, [(doc, 1)]
    while stack:
        node, level = stack.pop()
        children = (
            node.values() if isinstance(node, dict) else node if isinstance(node, list) else None
        )
        if children is None:
            continue
        deepest = max(deepest, level)
        stack.extend((child, level + 1) for child in children if isinstance(child, (dict, list)))
    return deepest


def _too_deep(max_depth: int) -> ApiError:
    return ApiError(
        ErrorKind.JSON_TOO_DEEP,
        f"the JSON body nests arrays and objects deeper than {max_depth} levels",
    )


def parse_json(raw: bytes, max_depth: int) -> object:
    """The parsed document of a JSON body, or ApiError 400 (``invalid_json``, ``json_too_deep``).

    Python's parser recurses per nesting level: a deep enough body raises RecursionError
    (which used to end in a 500), and a merely deep one would recurse later, in validation
    and serialization. Both are refused as ``json_too_deep``.
    """
    try:
        doc = json.loads(raw.decode("utf-8-sig"))  # 1С may write a BOM
    except UnicodeDecodeError:
        raise ApiError(ErrorKind.INVALID_JSON, "the body is not UTF-8") from None
    except RecursionError:
        raise _too_deep(max_depth) from None
    except json.JSONDecodeError as exc:
        raise ApiError(
            ErrorKind.INVALID_JSON,
            f"the body is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}",
        ) from None
    except ValueError as exc:
        # Not a JSONDecodeError: an integer longer than Python converts (4,300 digits).
        raise ApiError(ErrorKind.INVALID_JSON, f"the body is not valid JSON: {exc}"[:300]) from None
    if depth(doc) > max_depth:
        raise _too_deep(max_depth)
    return doc


async def read_json(
    request: Request, max_bytes: int, max_depth: int | None = None
) -> tuple[bytes, object]:
    """The raw bytes and the parsed document, or ApiError 415 / 413 / 400."""
    ctype = request.headers.get("content-type", "")
    media = ctype.split(";", 1)[0].strip().lower()
    if media != "application/json" and not (
        media.startswith("application/") and media.endswith("+json")
    ):
        raise ApiError(
            ErrorKind.UNSUPPORTED_MEDIA_TYPE,
            f"send the body as application/json (got {ctype or 'no content type'!r})",
        )
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
    if max_depth is None:
        max_depth = request.app.state.settings.ingress.max_json_depth
    return raw, parse_json(raw, max_depth)
