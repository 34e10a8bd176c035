"""The one id crosswalk: canonical id <-> the object's id in another system.

Normalizers are pure, so an object born in Bitrix24 gets a *derived* canonical id
(:func:`mmstream.models.base.derived_id`). Once we know that Bitrix24 object 42 is the 1С
counterparty G (egress created it, or it came back carrying G), the crosswalk maps
(counterparty, bitrix24, 42) to G, and :func:`resolve` rewrites the derived id of 42 to G
wherever a record uses it — as its own id or as a reference. Egress and the sink share it.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterable, Mapping
from uuid import UUID

from sqlalchemy import bindparam, text
from sqlalchemy.dialects.postgresql import ARRAY, TEXT
from sqlalchemy.dialects.postgresql import UUID as PG_UUID
from sqlalchemy.ext.asyncio import AsyncConnection

from mmstream.models.base import Canonical, derived_id

log = logging.getLogger(__name__)

_LINK = text(
    "INSERT INTO crosswalk (system, entity, canonical_id, external_id, derived_id) "
    "VALUES (:system, :entity, :canonical_id, :external_id, :derived_id) ON CONFLICT DO NOTHING"
)
_EXTERNAL = text(
    "SELECT external_id FROM crosswalk "
    "WHERE system = :system AND entity = :entity AND canonical_id = :canonical_id"
)
_ALIASES = text(
    "SELECT derived_id, canonical_id FROM crosswalk "
    "WHERE derived_id = ANY(:ids) AND canonical_id <> derived_id::text"
).bindparams(bindparam("ids", type_=ARRAY(PG_UUID(as_uuid=True))))
# Every link a batch carries in one statement (a batch of orders carries one per derived
# delivery task: one round trip each cost more than the merge). Input order is kept, so the
# first of two links that conflict wins, as with one statement per link.
_LINK_MANY = text(
    "INSERT INTO crosswalk (system, entity, canonical_id, external_id, derived_id) "
    "SELECT system, entity, canonical_id, external_id, derived_id "
    "FROM unnest(:systems, :entities, :canonical_ids, :external_ids, :derived_ids) "
    "WITH ORDINALITY AS l(system, entity, canonical_id, external_id, derived_id, n) ORDER BY n "
    "ON CONFLICT DO NOTHING"
).bindparams(
    *(bindparam(n, type_=ARRAY(TEXT)) for n in ("systems", "entities", "canonical_ids")),
    bindparam("external_ids", type_=ARRAY(TEXT)),
    bindparam("derived_ids", type_=ARRAY(PG_UUID(as_uuid=True))),
)


async def link(
    conn: AsyncConnection, entity: str, system: str, canonical_id: str, external_id: str
) -> None:
    """Record that ``canonical_id`` is ``external_id`` in ``system`` (idempotent)."""
    await conn.execute(
        _LINK,
        {
            "system": system,
            "entity": entity,
            "canonical_id": canonical_id,
            "external_id": external_id,
            "derived_id": derived_id(entity, system, external_id),
        },
    )


_OWNER = text(
    "SELECT canonical_id FROM crosswalk WHERE system = :system AND entity = :entity "
    "AND external_id = :external_id"
)
_UNLINK_OTHER = text(
    "DELETE FROM crosswalk WHERE system = :system AND entity = :entity "
    "AND canonical_id = :canonical_id AND external_id <> :external_id"
)


async def relink(
    conn: AsyncConnection, entity: str, system: str, canonical_id: str, external_id: str
) -> None:
    """Like :func:`link`, but an older link of ``canonical_id`` in ``system`` is replaced:
    for egress, which has just found or created the object there (the one it knew was
    deleted by a user), so its word is the latest."""
    params = {
        "system": system,
        "entity": entity,
        "canonical_id": canonical_id,
        "external_id": external_id,
    }
    owner = await conn.scalar(_OWNER, params)
    if owner is not None and owner != canonical_id:
        # The object is another canonical id's already: keep both links as they are (a
        # merge of two identities is a person's decision, not egress's).
        log.warning(
            "crosswalk: %s %s in %s is linked to %s already; %s keeps its link",
            entity,
            external_id,
            system,
            owner,
            canonical_id,
        )
        return
    await conn.execute(_UNLINK_OTHER, params)
    await link(conn, entity, system, canonical_id, external_id)


async def external_id(
    conn: AsyncConnection, entity: str, system: str, canonical_id: str
) -> str | None:
    """The object's id in ``system``, if known."""
    return await conn.scalar(
        _EXTERNAL, {"system": system, "entity": entity, "canonical_id": canonical_id}
    )


# By derived_id (indexed): it is a function of (entity, system, external id).
_CANONICAL = text(
    "SELECT canonical_id FROM crosswalk WHERE derived_id = :derived "
    "AND system = :system AND entity = :entity AND external_id = :external_id "
    "ORDER BY canonical_id LIMIT 1"
)


async def canonical_id(
    conn: AsyncConnection, entity: str, system: str, external_id: str
) -> str | None:
    """The canonical id of ``system``'s object ``external_id``, if known (the reverse of
    :func:`external_id`: egress reading Bitrix24 records that name other objects)."""
    return await conn.scalar(
        _CANONICAL,
        {
            "system": system,
            "entity": entity,
            "external_id": external_id,
            "derived": derived_id(entity, system, external_id),
        },
    )


_ALIAS = text(
    "SELECT canonical_id FROM crosswalk WHERE derived_id = CAST(:id AS uuid) "
    "AND canonical_id <> CAST(:id AS text) ORDER BY canonical_id LIMIT 1"
)


async def alias(conn: AsyncConnection, maybe_derived: str) -> str | None:
    """The canonical id that ``maybe_derived`` — the derived id of another system's object —
    stands for, once the crosswalk links that object; None otherwise. A record stored while
    an object it names was not linked yet (its link came later: a lost answer, an outage)
    keeps the derived id; :func:`resolve` rewrites only records stored after the link."""
    try:
        UUID(maybe_derived)
    except ValueError:
        return None
    return await conn.scalar(_ALIAS, {"id": maybe_derived})


@functools.cache
def ref_fields(model: type[Canonical]) -> Mapping[str, str]:
    """Reference fields of ``model`` -> the entity they point at (``json_schema_extra.ref``);
    read once per model."""
    out: dict[str, str] = {}
    for name, info in model.model_fields.items():
        extra = info.json_schema_extra
        ref = extra.get("ref") if isinstance(extra, dict) else None
        if isinstance(ref, str):
            out[name] = ref
    return out


async def resolve(conn: AsyncConnection, entities: Iterable[Canonical]) -> list[Canonical]:
    """Rewrite derived ids (own id and references) that the crosswalk maps to canonical ids,
    and record the external ids the entities carry."""
    items = list(entities)
    wanted: set[UUID] = set()
    for ent in items:
        wanted.add(ent.id)
        wanted.update(v for f in ref_fields(type(ent)) if isinstance(v := getattr(ent, f), UUID))
    aliases: dict[UUID, UUID] = {}
    if wanted:
        rows = (await conn.execute(_ALIASES, {"ids": list(wanted)})).all()
        aliases = {row.derived_id: UUID(row.canonical_id) for row in rows}
    out = []
    links: list[tuple[str, str, str, str]] = []  # (system, entity, canonical id, external id)
    for ent in items:
        update = {
            f: aliases[v]
            for f in ref_fields(type(ent))
            if isinstance(v := getattr(ent, f), UUID) and v in aliases
        }
        if ent.id in aliases:
            update["id"] = aliases[ent.id]
        ent = ent.model_copy(update=update) if update else ent
        for system, ext in ent.external_ids.items():
            if system != "onec" or ext != str(ent.id):
                links.append((system, ent.ENTITY, str(ent.id), ext))
        out.append(ent)
    if links:
        await conn.execute(
            _LINK_MANY,
            {
                "systems": [system for system, _, _, _ in links],
                "entities": [entity for _, entity, _, _ in links],
                "canonical_ids": [canonical for _, _, canonical, _ in links],
                "external_ids": [ext for _, _, _, ext in links],
                "derived_ids": [derived_id(e, system, ext) for system, e, _, ext in links],
            },
        )
    return out
