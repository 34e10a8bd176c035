"""Re-stating an entity's current row as a new change, through the outbox.

Two callers repair a target this way, never by writing around the pipeline: the reconcile
(stages/reconcile/job.py, drift found) and egress (stages/egress/delivery.py, a replayed DLQ
record that a later no-op delivery superseded). The new outbox entry carries the merged row
as the entity sink writes it, plus ``REPAIR_MARK``: actions that skip another system's own
changes (an echo) write a marked row whoever wrote its last version.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import text

REPAIR_MARK = "mm_reconcile_run"

# The merged row as the entity sink writes it into the outbox (stages/sink/entity_store.py).
_PAYLOAD = (
    "(to_jsonb(t) - 'stored_at' - 'changed_at' - 'event_id' - 'writers') "
    f"|| jsonb_build_object('{REPAIR_MARK}', CAST(:run AS text))"
)


def republish(table: str, *, header: str = "mm.reconcile") -> Any:
    """Re-publish the current row of ``table`` as a change (parameters ``event_id``,
    ``entity``, ``id``, ``run``; returns the outbox id, or no row when the entity has no
    earlier outbox entry). It is relayed from the partition of the entity's last outbox
    entry: the worker owning that partition publishes it, after the entity's earlier
    entries. ``table`` and ``header`` come from fixed names, never from input."""
    return text(
        "INSERT INTO outbox (event_id, entity, entity_id, change, version, source_topic, "  # noqa: S608
        "source_partition, source_offset, payload, headers) "
        f"SELECT CAST(:event_id AS uuid), :entity, t.id::text, "
        "CASE WHEN t.deleted THEN 'delete' ELSE 'upsert' END, t.version, o.source_topic, "
        f"o.source_partition, o.source_offset, {_PAYLOAD}, "
        f"jsonb_build_object('{header}', CAST(:run AS text)) "
        f'FROM "{table}" t JOIN LATERAL (SELECT source_topic, source_partition, source_offset '
        "  FROM outbox WHERE entity = :entity AND entity_id = t.id::text "
        "  ORDER BY id DESC LIMIT 1) o ON true "
        "WHERE t.id::text = :id RETURNING id"
    )
