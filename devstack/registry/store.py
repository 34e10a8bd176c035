"""The registry's storage on PostgreSQL (migration 0001) and its operations.

``registry_schema`` holds each distinct schema once under its global id,
``registry_subject_version`` maps (subject, version) to an id with a soft-delete flag,
``registry_config`` holds compatibility levels (the global level under subject '').
"""

from __future__ import annotations

import json
import logging

from sqlalchemy import Connection, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError

from devstack.registry.errors import (
    RegistryError,
    no_subject_level,
    schema_id_not_found,
    subject_not_found,
)
from devstack.registry.rows import (
    SubjectVersion,
    lock_subject,
    locked_subject_rows,
    pick,
    schema_id_of,
    schema_rows,
    subject_rows,
    visible,
)
from devstack.registry.schema import ParsedSchema
from mmstream import avro_compat as compat

log = logging.getLogger(__name__)

# registry_config row of the global level: '' can never be a subject in a URL path.
GLOBAL_SUBJECT = ""
_REGISTER_ATTEMPTS = 5
# Unique violation, serialization failure, deadlock: a concurrent writer won; try again.
_RETRY_SQLSTATES = frozenset({"23505", "40001", "40P01"})


class RegistryStore:
    """The registry's operations on PostgreSQL; raises RegistryError for API errors."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    # -- reads

    def subjects(self, deleted: bool, deleted_only: bool, prefix: str) -> list[str]:
        """Subject names: live ones, plus soft-deleted ones on request."""
        with self.engine.connect() as conn:
            result = conn.execute(
                text(
                    "SELECT subject, bool_and(deleted) FROM registry_subject_version "
                    "WHERE starts_with(subject, :prefix) GROUP BY subject ORDER BY subject"
                ),
                {"prefix": prefix},
            )
            rows = result.all()
        if deleted_only:
            return [s for s, all_deleted in rows if all_deleted]
        return [s for s, all_deleted in rows if deleted or not all_deleted]

    def versions(self, subject: str, deleted: bool = False) -> list[SubjectVersion]:
        """The subject's versions, oldest first (soft-deleted ones only when asked)."""
        with self.engine.connect() as conn:
            return visible(subject_rows(conn, subject), deleted)

    def version(self, subject: str, version: int | None, deleted: bool = False) -> SubjectVersion:
        """One version (None: latest); 40401 / 40402 when absent."""
        return pick(self.versions(subject, deleted), subject, version)

    def schema(self, schema_id: int) -> tuple[str, str]:
        """(schema type, schema text) of a global id; 40403 when unknown."""
        with self.engine.connect() as conn:
            row = conn.execute(
                text("SELECT schema_type, canonical FROM registry_schema WHERE id = :id"),
                {"id": schema_id},
            ).first()
        if row is None:
            raise schema_id_not_found(schema_id)
        return row[0], row[1]

    def usages(self, schema_id: int, deleted: bool) -> list[SubjectVersion]:
        """Every (subject, version) that uses a global id; 40403 when the id is unknown."""
        self.schema(schema_id)
        with self.engine.connect() as conn:
            return visible(schema_rows(conn, schema_id), deleted)

    def lookup(self, subject: str, schema: ParsedSchema, deleted: bool) -> SubjectVersion:
        """The version of ``subject`` holding ``schema``; 40401 / 40403 when none."""
        rows = self.versions(subject, deleted)
        if not rows:
            raise subject_not_found(subject)
        with self.engine.connect() as conn:
            schema_id = schema_id_of(conn, schema.fingerprint)
        for row in rows:
            if row.schema_id == schema_id:
                return row
        raise RegistryError(40403, "Schema not found")

    def level(self, subject: str | None, fallback: bool = True) -> str | None:
        """Configured level of ``subject`` (None: global), falling back to global/default."""
        with self.engine.connect() as conn:
            return self._level(conn, subject, fallback)

    @staticmethod
    def _level(conn: Connection, subject: str | None, fallback: bool = True) -> str | None:
        wanted = [GLOBAL_SUBJECT] if subject is None else [subject, GLOBAL_SUBJECT]
        found = dict(
            conn.execute(
                text("SELECT subject, compatibility FROM registry_config WHERE subject = ANY(:s)"),
                {"s": wanted},
            ).all()
        )
        if subject is not None and subject in found:
            return found[subject]
        if subject is not None and not fallback:
            return None
        return found.get(GLOBAL_SUBJECT, compat.DEFAULT_LEVEL)

    def compatibility_with(
        self, subject: str, version: int | None, schema: ParsedSchema
    ) -> list[str]:
        """Why ``schema`` may not follow one version (None: latest) under the subject's level."""
        level, rows = self._level_and_live(subject)
        row = pick(rows, subject, version)
        # Against one chosen version, a transitive level means the same as its base level.
        return _check(level.removesuffix("_TRANSITIVE"), schema, [row])

    def compatibility_all(self, subject: str, schema: ParsedSchema) -> list[str]:
        """Why ``schema`` may not be registered now (every version the level requires)."""
        level, rows = self._level_and_live(subject)
        return _check(level, schema, rows)

    def _level_and_live(self, subject: str) -> tuple[str, list[SubjectVersion]]:
        """The subject's compatibility level and its live versions."""
        with self.engine.connect() as conn:
            return self._level(conn, subject), visible(subject_rows(conn, subject), False)

    # -- writes

    def register(self, subject: str, schema: ParsedSchema) -> int:
        """Register ``schema`` under ``subject``; its global id. Idempotent; 409 if the
        subject's compatibility level forbids it."""
        for attempt in range(1, _REGISTER_ATTEMPTS + 1):
            try:
                with self.engine.begin() as conn:
                    return self._register(conn, subject, schema)
            except (DBAPIError, _VersionTaken) as exc:
                sqlstate = (
                    "23505"
                    if isinstance(exc, _VersionTaken)
                    else getattr(exc.orig, "sqlstate", None)
                )
                if sqlstate not in _RETRY_SQLSTATES or attempt == _REGISTER_ATTEMPTS:
                    raise
                log.info(
                    "registry: concurrent registration, retrying",
                    extra={"subject": subject, "sqlstate": sqlstate, "attempt": attempt},
                )
        raise AssertionError("unreachable")

    def _register(self, conn: Connection, subject: str, schema: ParsedSchema) -> int:
        lock_subject(conn, subject)
        schema_id = schema_id_of(conn, schema.fingerprint)
        rows = subject_rows(conn, subject)
        live = [r for r in rows if not r.deleted]
        if schema_id is not None and any(r.schema_id == schema_id for r in live):
            return schema_id  # already a live version: Confluent answers its id, no check
        reasons = _check(self._level(conn, subject), schema, live)
        if reasons:
            raise RegistryError(
                409,
                f"Schema being registered is incompatible with an earlier schema for subject "
                f'"{subject}", details: {json.dumps(reasons, ensure_ascii=False)}',
            )
        if schema_id is None:
            # ON CONFLICT: another subject may be registering the same schema right now;
            # its committed row is then read back by the SELECT below.
            schema_id = conn.execute(
                text(
                    "INSERT INTO registry_schema (schema_type, canonical, fingerprint) "
                    "VALUES ('AVRO', :canonical, :f) ON CONFLICT (fingerprint) DO NOTHING "
                    "RETURNING id"
                ),
                {"canonical": schema.text, "f": schema.fingerprint},
            ).scalar()
            if schema_id is None:
                schema_id = schema_id_of(conn, schema.fingerprint, required=True)
        # Numbers continue after soft-deleted versions, as in Confluent.
        next_version = max((r.version for r in rows), default=0) + 1
        # Confluent tombstones a soft-deleted version of the same schema when it is
        # registered again; here that also frees UNIQUE (subject, schema_id).
        conn.execute(
            text(
                "DELETE FROM registry_subject_version "
                "WHERE subject = :subject AND schema_id = :id AND deleted"
            ),
            {"subject": subject, "id": schema_id},
        )
        inserted = conn.execute(
            text(
                "INSERT INTO registry_subject_version (subject, version, schema_id) "
                "VALUES (:subject, :version, :id) ON CONFLICT DO NOTHING RETURNING version"
            ),
            {"subject": subject, "version": next_version, "id": schema_id},
        ).scalar()
        if inserted is None:
            # Only possible if the subject lock was bypassed; the caller retries.
            raise _VersionTaken(f"{subject} version {next_version}")
        log.info(
            "registry: registered schema",
            extra={"subject": subject, "version": next_version, "id": schema_id},
        )
        return schema_id

    def delete_subject(self, subject: str, permanent: bool) -> list[int]:
        """Soft-delete every live version (or hard-delete soft-deleted ones); the versions."""
        with self.engine.begin() as conn:
            rows = locked_subject_rows(conn, subject)
            live = [r.version for r in rows if not r.deleted]
            if permanent:
                if live:
                    raise RegistryError(
                        40405,
                        f"Subject '{subject}' was not deleted first "
                        "before being permanently deleted",
                    )
                conn.execute(
                    text("DELETE FROM registry_subject_version WHERE subject = :s"), {"s": subject}
                )
                return [r.version for r in rows]
            if not live:
                raise RegistryError(
                    40404,
                    f"Subject '{subject}' was soft deleted.Set "
                    "permanent=true to delete permanently",
                )
            conn.execute(
                text("UPDATE registry_subject_version SET deleted = true WHERE subject = :s"),
                {"s": subject},
            )
            # Confluent drops the subject's compatibility config with the subject.
            conn.execute(text("DELETE FROM registry_config WHERE subject = :s"), {"s": subject})
            return live

    def delete_version(self, subject: str, version: int | None, permanent: bool) -> int:
        """Soft-delete one version (hard-delete a soft-deleted one); the version number."""
        with self.engine.begin() as conn:
            rows = locked_subject_rows(conn, subject)
            # "latest" of a soft delete is the latest live version; a number (or a
            # permanent delete) may name a soft-deleted one.
            row = pick(visible(rows, deleted=version is not None or permanent), subject, version)
            if permanent:
                if not row.deleted:
                    raise RegistryError(
                        40407,
                        f"Subject '{subject}' Version {row.version} was "
                        "not deleted first before being permanently deleted",
                    )
                conn.execute(
                    text(
                        "DELETE FROM registry_subject_version WHERE subject = :s AND version = :v"
                    ),
                    {"s": subject, "v": row.version},
                )
            else:
                if row.deleted:
                    raise RegistryError(
                        40406,
                        f"Subject '{subject}' Version {row.version} was "
                        "soft deleted.Set permanent=true to delete "
                        "permanently",
                    )
                conn.execute(
                    text(
                        "UPDATE registry_subject_version SET deleted = true "
                        "WHERE subject = :s AND version = :v"
                    ),
                    {"s": subject, "v": row.version},
                )
            return row.version

    def set_level(self, subject: str | None, level: str) -> None:
        """Set the level of ``subject`` (None: the global level)."""
        with self.engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO registry_config (subject, compatibility) VALUES (:s, :c) "
                    "ON CONFLICT (subject) DO UPDATE SET compatibility = EXCLUDED.compatibility"
                ),
                {"s": GLOBAL_SUBJECT if subject is None else subject, "c": level},
            )

    def delete_level(self, subject: str | None) -> str:
        """Remove a subject's level (None: reset the global one); the level it had."""
        with self.engine.begin() as conn:
            old = self._level(conn, subject, fallback=subject is None)
            if old is None:
                raise no_subject_level(subject)
            conn.execute(
                text("DELETE FROM registry_config WHERE subject = :s"),
                {"s": GLOBAL_SUBJECT if subject is None else subject},
            )
            return old

    def ping(self) -> None:
        """Raise if the database does not answer."""
        with self.engine.connect() as conn:
            conn.execute(text("SELECT 1"))


class _VersionTaken(Exception):
    """A version number taken concurrently; register() retries like a unique violation."""


def _check(level: str, schema: ParsedSchema, rows: list[SubjectVersion]) -> list[str]:
    return compat.check(
        level,
        schema.value,
        [json.loads(r.text) for r in rows],
        labels=[f"version {r.version}" for r in rows],
    )
