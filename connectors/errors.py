"""Errors of the connectors package (bridge, target clients, emulators).

Domain errors carry no HTTP status of their own: the bridge maps them to responses at
its edge (connectors/ingress/errors.py). Target-client errors say whether a retry can
help (``retriable``) and whether an operator must look (``alert``).
"""

from __future__ import annotations

from mmstream.errors import MMStreamError


class ConnectorError(MMStreamError):
    """Root of errors raised while talking to a source or target system."""

    code = "connector_error"
    #: True when a human must act (broken credentials, a portal blocked by its vendor).
    alert: bool = False
    #: Seconds the target asked us to wait before the next attempt, if it said so.
    retry_after: float | None = None
