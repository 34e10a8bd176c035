"""Errors of the DLQ tooling (list, show, replay)."""

from __future__ import annotations

from mmstream.errors import PermanentError


class ReplayRefused(PermanentError):
    """A selected record cannot be replayed (no source topic, or one that is not declared
    in topics.yaml or missing on the cluster). Nothing was published: fix the cause or
    narrow the selection."""

    code = "replay_refused"


class PatchRefused(ReplayRefused):
    """The JSON patch is invalid or does not apply to a selected record (not JSON, Avro,
    a tombstone, or a failed ``test``/missing path). Nothing was published."""

    code = "patch_refused"
