"""What both halves of the 1С client share (connectors/onec/client.py: the HTTP service;
connectors/onec/odata_write.py: documents over standard OData): the target label of their
metrics and circuit, the checks of the names put into a URL, and reading an answer's body."""

from __future__ import annotations

import re
from typing import Any
from uuid import UUID

import httpx

#: The target label of the client's metrics and circuit (one breaker per base).
TARGET = "onec"

ENTITY_SET_RE = re.compile(r"^Document_\w+$")
_GUID_RE = re.compile(
    r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
)


def guid(value: UUID | str, name: str) -> str:
    """``value`` as a lower-case GUID, or ValueError naming the argument."""
    text = str(value)
    if not _GUID_RE.match(text):
        raise ValueError(f"{name} is not a GUID: {text!r}")
    return text.lower()


def decode(response: httpx.Response) -> Any:
    """The answer's JSON, its text when it is not JSON, None when it is empty."""
    if not response.content:
        return None
    try:
        return response.json()
    except ValueError:
        # A proxy's or 1С's own HTML page: keep the text for the message.
        return response.text
