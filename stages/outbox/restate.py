"""Re-stating an entity's current row, marked so that every action writes it.

The reconcile (stages/reconcile/job.py) repairs drift through a new outbox entry
(:func:`republish`); egress (stages/egress/delivery.py) delivers a replayed DLQ change that a
later no-op delivery superseded as the entity's current row (:func:`current_row`), under the
lease it already holds. Both carry the merged row as the entity sink writes it into the
outbox, plus ``REPAIR_MARK``: actions that skip another system's own changes (an echo) write
a marked row whoever wrote its last version.
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


def current_row(table: str) -> Any:
    """The current row of ``table`` (parameters ``id``, ``run``) as JSON text, the way the
    outbox holds it, marked with ``REPAIR_MARK``; no row for an unknown id. ``table`` comes
    from a fixed name, never from input."""
    return text(f'SELECT ({_PAYLOAD})::text FROM "{table}" t WHERE t.id::text = :id')  # noqa: S608


def republish(table: str) -> Any:
    """Re-publish the current row of ``table`` as a change (parameters ``event_id``,
    ``entity``, ``id``, ``run``; returns the outbox id, or no row when the entity has no
    earlier outbox entry). It is relayed from the partition of the entity's last outbox
    entry: the worker owning that partition publishes it, after the entity's earlier
    entries. ``table`` comes from a fixed name, never from input."""
    return text(
        "INSERT INTO outbox (event_id, entity, entity_id, change, version, source_topic, "  # noqa: S608
        "source_partition, source_offset, payload, headers) "
        f"SELECT CAST(:event_id AS uuid), :entity, t.id::text, "
        "CASE WHEN t.deleted THEN 'delete' ELSE 'upsert' END, t.version, o.source_topic, "
        f"o.source_partition, o.source_offset, {_PAYLOAD}, "
        "jsonb_build_object('mm.reconcile', CAST(:run AS text)) "
        f'FROM "{table}" t JOIN LATERAL (SELECT source_topic, source_partition, source_offset '
        "  FROM outbox WHERE entity = :entity AND entity_id = t.id::text "
        "  ORDER BY id DESC LIMIT 1) o ON true "
        "WHERE t.id::text = :id RETURNING id"
    )
