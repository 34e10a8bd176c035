"""Self-repairing crosswalk links of master data written to Bitrix24.

The crosswalk remembers which Bitrix24 object each canonical object is. Bitrix24 can make
that memory wrong in two ways, and an action must notice both before it writes:

* **gone** — a manager deleted the object in Bitrix24 (or the portal was reset or replaced):
  an update by the remembered id is refused ("not found", see
  :func:`connectors.bitrix24.errors.is_not_found`). The object is created again — after a
  look-up by its external key, so a retry after a lost answer finds the object the first
  attempt created instead of creating a second one;
* **other** — the id now belongs to a different object (a reset portal reissues ids from 1,
  and other objects, ours or a user's, take them): the object there carries another
  external key (``xmlId`` / ``ORIGIN_ID``). Updating it would overwrite someone else's
  object, so the action treats ours as gone and relinks.

:func:`link_state` is the pure decision; :func:`claim` relinks, taking the id away from a
canonical object whose link to it is provably stale (the object at that id carries *our*
key, so it cannot be theirs) — without that, the crosswalk would refuse the link
("… is linked to … already") and the change would keep failing.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Mapping
from typing import Any

from sqlalchemy import text

from mmstream.retry import retry_forever
from stages.egress.delivery import Crosswalk

log = logging.getLogger(__name__)


class LinkState(enum.Enum):
    """What the object at a crosswalked id is to us."""

    #: The object is there and is ours.
    OURS = "ours"
    #: No object at that id.
    GONE = "gone"
    #: Another object holds the id now (its external key is not ours).
    OTHER = "other"


def external_key(row: Mapping[str, Any], key_field: str) -> str:
    """The external key a portal row carries, trimmed; empty when it has none."""
    value = row.get(key_field)
    return "" if value is None else str(value).strip()


def link_state(
    row: Mapping[str, Any] | None, key_field: str, ours: str, *, keyless_is_ours: bool = False
) -> LinkState:
    """Whether the portal's ``row`` at a crosswalked id is our object (``ours`` = our
    canonical id, the external key we write into ``key_field``).

    ``keyless_is_ours``: whether a row without any key can still be ours — true for CRM
    records, which may be born in Bitrix24 and linked to a 1С counterparty before our first
    update stamps ``ORIGIN_ID``; false for catalog rows (products, warehouses, price types),
    which are only ever linked by egress, which always writes ``xmlId`` (the portal stamps
    a product saved without one with its own id).
    """
    if row is None:
        return LinkState.GONE
    key = external_key(row, key_field)
    if key == str(ours) or (not key and keyless_is_ours):
        return LinkState.OURS
    return LinkState.OTHER


def describe(
    state: LinkState,
    entity: str,
    canonical_id: str,
    known: str,
    row: Mapping[str, Any] | None,
    key_field: str,
) -> str:
    """A log line saying why the link of ``canonical_id`` to ``known`` is being repaired."""
    if state is LinkState.GONE:
        return (
            f"{entity} {canonical_id}: bitrix24 object {known} is gone (deleted in the "
            "portal): recreating it"
        )
    other = external_key(row or {}, key_field)
    return (
        f"{entity} {canonical_id}: bitrix24 id {known} now belongs to another object "
        f"({key_field}={other!r}): relinking instead of overwriting it"
    )


_STEAL = text(
    "DELETE FROM crosswalk WHERE system = :system AND entity = :entity "
    "AND external_id = :external_id AND canonical_id <> :canonical_id "
    "RETURNING canonical_id"
)


async def claim(
    xwalk: Crosswalk, entity: str, system: str, canonical_id: str, external_id: str
) -> None:
    """Link ``canonical_id`` to ``external_id`` — an object just found by our external key
    or just created — dropping another canonical object's link to the same id first: that
    link is stale (the portal reissued the id), and the crosswalk keeps one owner per id."""
    owner = await xwalk.canonical_id(entity, system, external_id)
    if owner is not None and owner != str(canonical_id):

        async def steal() -> list[str]:
            async with xwalk.engine.begin() as conn:
                rows = await conn.execute(
                    _STEAL,
                    {
                        "system": system,
                        "entity": entity,
                        "external_id": str(external_id),
                        "canonical_id": str(canonical_id),
                    },
                )
                return [r[0] for r in rows]

        dropped = await retry_forever(steal, stage="egress", what="crosswalk relink", entity=entity)
        if dropped:
            log.warning(
                "crosswalk: %s %s in %s carried %s's key, not %s's: %s's stale link "
                "dropped (its next change finds or recreates its own object)",
                entity,
                external_id,
                system,
                canonical_id,
                ", ".join(dropped),
                ", ".join(dropped),
            )
    await xwalk.link(entity, system, str(canonical_id), str(external_id))
