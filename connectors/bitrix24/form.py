"""PHP-style form bodies, as Bitrix24 posts its outbound events.

``event=ONCRMDEALUPDATE&data[FIELDS][ID]=42&auth[member_id]=…`` becomes
``{"event": "ONCRMDEALUPDATE", "data": {"FIELDS": {"ID": "42"}}, "auth": {"member_id": …}}``.

Pure and strict: the bridge meets scanners and junk at this edge, so the field count and
the nesting depth are bounded, bytes must be UTF-8, and a key used both as a value and as
a container is refused instead of silently overwritten.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qsl

from connectors.errors import ConnectorError

MAX_FIELDS = 200
MAX_DEPTH = 6
# Bitrix24's keys are short (``auth[application_token]``, ``data[FIELDS][ENTITY_TYPE_ID]``).
MAX_KEY_CHARS = 200

_KEY = re.compile(r"^([^\[\]]+)((?:\[[^\[\]]*\])*)$")
_SEGMENT = re.compile(r"\[([^\[\]]*)\]")


class MalformedForm(ConnectorError):
    """The body is not a form Bitrix24 could have sent (encoding, size or key structure)."""

    code = "bitrix24_malformed_form"


class FormTooLarge(MalformedForm):
    """The form is over a bound (fields, nesting, key length): refused before it is built."""

    code = "bitrix24_form_too_large"


def parse_php_form(
    raw: bytes | str, *, max_fields: int = MAX_FIELDS, max_depth: int = MAX_DEPTH
) -> dict[str, Any]:
    """The nested dict of a form body; ``a[]=x&a[]=y`` gives a list, like PHP's ``$_POST``."""
    try:
        text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
        pairs = parse_qsl(
            text,
            keep_blank_values=True,
            strict_parsing=False,
            encoding="utf-8",
            errors="strict",
            max_num_fields=max_fields,
        )
    except UnicodeDecodeError:
        raise MalformedForm("the form is not UTF-8") from None
    except ValueError:
        raise FormTooLarge(f"the form has more than {max_fields} fields") from None
    root: dict[str, Any] = {}
    for key, value in pairs:
        path = _path(key, max_depth)
        _put(root, path, value, key)
    return _listify(root)


def _path(key: str, max_depth: int) -> list[str]:
    if len(key) > MAX_KEY_CHARS:
        raise FormTooLarge(f"form key {key[:80]!r}… is longer than {MAX_KEY_CHARS} characters")
    if key.count("[") > max_depth:  # before the regex: bounds its work on a hostile key
        raise FormTooLarge(f"form key {key[:80]!r} is nested deeper than {max_depth}")
    match = _KEY.match(key)
    if match is None:
        raise MalformedForm(f"unreadable form key {key[:80]!r}")
    path = [match.group(1), *_SEGMENT.findall(match.group(2))]
    if len(path) > max_depth:
        raise FormTooLarge(f"form key {key[:80]!r} is nested deeper than {max_depth}")
    return path


def _put(root: dict[str, Any], path: list[str], value: str, key: str) -> None:
    node = root
    for depth, part in enumerate(path):
        if part == "":
            # PHP's append: the next free integer index of this level.
            part = str(sum(1 for k in node if k.isdigit()))
        if depth == len(path) - 1:
            if isinstance(node.get(part), dict):
                raise MalformedForm(f"form key {key[:80]!r} is both a value and a container")
            node[part] = value
            return
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise MalformedForm(f"form key {key[:80]!r} is both a value and a container")
        node = child


def _listify(node: Any) -> Any:
    if not isinstance(node, dict):
        return node
    out = {k: _listify(v) for k, v in node.items()}
    if out and list(out) == [str(i) for i in range(len(out))]:
        return list(out.values())
    return out
