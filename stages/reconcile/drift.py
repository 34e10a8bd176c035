"""What a reconcile finds: the pure classification of drift between PostgreSQL (the canonical
rows, the crosswalk) and what a target or the source holds.

No I/O here: the callers list both sides (stages/reconcile/bitrix24.py, onec.py) and hand
the rows in; this module only compares them, so every rule has a unit test.

Kinds (``Drift.kind``, the ``kind`` label of ``mm_reconcile_drift``):

* ``missing`` — we hold the object, the target has never had it (no crosswalk link, nothing
  with our external key): a change was lost before it was delivered;
* ``deleted`` — the crosswalk links it, the object is gone and nothing carries our key (a
  manager deleted it in the portal);
* ``differs`` — the object is there and ours, but a field we own differs (edited in the
  portal, or an update was lost);
* ``relinked`` — the crosswalked id now holds another object (its external key is not ours:
  a reset portal reissued the id), or our object sits at an id the crosswalk does not name;
* ``orphan`` — the target holds an object with our kind of external key that PostgreSQL does
  not know (we lost the row, or the change never reached the sink);
* ``newer_at_source`` — the source (1С) holds a version of the object PostgreSQL never saw.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from stages.egress.relink import LinkState, external_key, link_state

KINDS = ("missing", "deleted", "differs", "relinked", "orphan", "newer_at_source")
#: 1С references are GUIDs: an external key of that shape is one of ours (a manager's own
#: portal object has none, or another integration's).
_GUID = re.compile(
    r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-"
    r"[0-9a-fA-F]{12}$"
)


@dataclass(frozen=True)
class Drift:
    """One difference, named by the canonical id (or, for an orphan, the external key)."""

    entity: str
    target: str
    kind: str
    canonical_id: str
    external_id: str | None = None
    detail: str = ""
    #: Owned fields that differ: name -> {"ours": ..., "theirs": ...}.
    fields: dict[str, dict[str, Any]] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready view (``mmctl reconcile --output json``)."""
        return asdict(self)


@dataclass(frozen=True)
class Canonical:
    """A canonical object as the target should show it.

    ``expected``: the owned fields the egress writes (the action's own pure mapping of the
    row); ``linked``: the crosswalk's external id (``None`` when unlinked); ``present``:
    whether the target should hold it at all (a deleted row or a folder need not).
    """

    id: str
    expected: Mapping[str, Any]
    linked: str | None = None
    present: bool = True
    #: The external key the target holds for it, when it is not the canonical id (a price:
    #: ``<product id>:<price type id>`` of the portal).
    key: str | None = None

    @property
    def target_key(self) -> str:
        """What the target's key field holds for this object."""
        return self.key or self.id


@dataclass(frozen=True)
class TargetRow:
    """An object of the target: its id (as the crosswalk writes it) and its fields."""

    id: str
    fields: Mapping[str, Any]


def is_ours(key: str) -> bool:
    """Whether an external key has the shape of our canonical ids (a 1С GUID)."""
    return bool(_GUID.match(key))


def _norm(value: Any) -> str:
    """Fields compared as the portal echoes them: text, trimmed; booleans as Y/N."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "Y" if value else "N"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def field_diff(expected: Mapping[str, Any], actual: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The owned fields whose value at the target is not the one we wrote."""
    return {
        name: {"ours": want, "theirs": actual.get(name)}
        for name, want in expected.items()
        if _norm(want) != _norm(actual.get(name))
    }


def classify_target(
    entity: str,
    target: str,
    key_field: str,
    canonical: Iterable[Canonical],
    rows: Iterable[TargetRow],
    *,
    owned: Iterable[str] | None = None,
    keyless_is_ours: bool = False,
    orphan_key: Callable[[str, Mapping[str, Any]], bool] | None = None,
) -> list[Drift]:
    """Drift between the canonical objects of ``entity`` and the target's listing ``rows``.

    ``key_field``: where the target keeps our canonical id (``xmlId``, ``ORIGIN_ID``);
    ``owned``: the fields compared (default: every expected field); ``orphan_key``: which
    keys (given with their row) count as ours when PostgreSQL does not know them (default:
    a GUID-shaped key, :func:`is_ours`). A row ``present`` False (deleted here) need not be
    at the target; its ``expected`` fields are still compared when it is.
    """
    orphan_key = orphan_key or (lambda key, _row: is_ours(key))
    by_id = {str(r.id): r for r in rows}
    by_key: dict[str, TargetRow] = {}
    for row in sorted(by_id.values(), key=lambda r: _sort_id(r.id)):
        by_key.setdefault(external_key(row.fields, key_field), row)  # oldest wins, as egress
    known: set[str] = set()
    out: list[Drift] = []
    for obj in canonical:
        known.add(obj.target_key)
        names = list(owned) if owned is not None else list(obj.expected)
        expected = {n: obj.expected[n] for n in names if n in obj.expected}
        mine = by_key.get(obj.target_key)
        if obj.linked is not None:
            at = by_id.get(str(obj.linked))
            state = link_state(
                at.fields if at else None,
                key_field,
                obj.target_key,
                keyless_is_ours=keyless_is_ours,
            )
            if state is LinkState.OURS:
                mine = at
            elif mine is not None:
                out.append(
                    Drift(
                        entity,
                        target,
                        "relinked",
                        obj.id,
                        str(obj.linked),
                        f"the crosswalk names {obj.linked}; our object is {mine.id}",
                    )
                )
                continue
            elif not obj.present:
                continue
            elif state is LinkState.OTHER:
                other = external_key(at.fields if at else {}, key_field)
                out.append(
                    Drift(
                        entity,
                        target,
                        "relinked",
                        obj.id,
                        str(obj.linked),
                        f"{obj.linked} now holds another object ({key_field}={other!r})",
                    )
                )
                continue
            else:
                out.append(
                    Drift(
                        entity,
                        target,
                        "deleted",
                        obj.id,
                        str(obj.linked),
                        f"{obj.linked} is gone from {target}",
                    )
                )
                continue
        elif mine is not None:
            out.append(
                Drift(
                    entity,
                    target,
                    "relinked",
                    obj.id,
                    str(mine.id),
                    f"the crosswalk has no link; our object is {mine.id}",
                )
            )
            continue
        if mine is None:
            if obj.present:
                out.append(
                    Drift(
                        entity,
                        target,
                        "missing",
                        obj.id,
                        None,
                        f"no object with {key_field}={obj.target_key} in {target}",
                    )
                )
            continue
        diff = field_diff(expected, mine.fields)
        if diff:
            out.append(
                Drift(
                    entity,
                    target,
                    "differs",
                    obj.id,
                    str(mine.id),
                    "fields differ: " + ", ".join(sorted(diff)),
                    diff,
                )
            )
    for key, row in by_key.items():
        if key and key not in known and orphan_key(key, row.fields):
            out.append(
                Drift(
                    entity,
                    target,
                    "orphan",
                    key,
                    str(row.id),
                    f"{target} object {row.id} carries {key_field}={key}, unknown here",
                )
            )
    return out


def classify_source(
    entity: str, source: str, versions: Mapping[str, str], seen: Mapping[str, set[str]]
) -> list[Drift]:
    """``newer_at_source``: objects whose current version at the source (``versions``: id ->
    version, e.g. 1С ``DataVersion``) is not among the versions PostgreSQL has seen of them
    (``seen``: id -> versions, the sink's dedupe record). 1С versions are opaque, not
    ordered, so "not seen" is the only "newer" they can tell."""
    return [
        Drift(
            entity,
            source,
            "newer_at_source",
            ident,
            None,
            f"{source} holds version {version!r}, not seen here",
        )
        for ident, version in sorted(versions.items())
        if version not in seen.get(ident, set())
    ]


def summary(drifts: Iterable[Drift]) -> dict[tuple[str, str, str], int]:
    """Counts by (entity, target, kind): the ``mm_reconcile_drift`` gauge's values."""
    counts: dict[tuple[str, str, str], int] = {}
    for d in drifts:
        counts[(d.entity, d.target, d.kind)] = counts.get((d.entity, d.target, d.kind), 0) + 1
    return counts


def _sort_id(ident: str) -> tuple[int, str]:
    text = str(ident)
    tail = text.rpartition(":")[2]
    return (int(tail), text) if tail.isdigit() else (1 << 62, text)
