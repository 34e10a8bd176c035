"""Reading the registry's tables: subject-version rows joined with their schema, the id of
a schema by fingerprint, the per-subject write lock, and choosing a version among rows."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, text

from devstack.registry.errors import subject_not_found, version_not_found

# Namespaces our advisory locks away from any other advisory lock on the same database.
_LOCK_CLASS = 0x52454731

_VERSION_ROWS = """
    SELECT v.subject, v.version, v.schema_id, v.deleted, s.schema_type, s.canonical
    FROM registry_subject_version v JOIN registry_schema s ON s.id = v.schema_id
"""


@dataclass(frozen=True)
class SubjectVersion:
    """One row of registry_subject_version joined with its schema."""

    subject: str
    version: int
    schema_id: int
    deleted: bool
    schema_type: str
    text: str

    def as_json(self) -> dict:
        """Confluent's subject-version body (schemaType only when not AVRO, as Confluent)."""
        body = {
            "subject": self.subject,
            "version": self.version,
            "id": self.schema_id,
            "schema": self.text,
        }
        if self.schema_type != "AVRO":
            body["schemaType"] = self.schema_type
        return body


def subject_rows(conn: Connection, subject: str) -> list[SubjectVersion]:
    """Every version of ``subject``, soft-deleted ones included, oldest first."""
    return _rows(conn, "v.subject = :subject", subject=subject)


def schema_rows(conn: Connection, schema_id: int) -> list[SubjectVersion]:
    """Every (subject, version) using the global id, soft-deleted ones included."""
    return _rows(conn, "v.schema_id = :id", id=schema_id)


def locked_subject_rows(conn: Connection, subject: str) -> list[SubjectVersion]:
    """Lock ``subject`` for this transaction, then its rows; 40401 when it has none."""
    lock_subject(conn, subject)
    rows = subject_rows(conn, subject)
    if not rows:
        raise subject_not_found(subject)
    return rows


def lock_subject(conn: Connection, subject: str) -> None:
    """Take the subject's advisory lock until the transaction ends."""
    # Serializes every write to one subject: two registrations must not both pass the
    # compatibility check against the same latest version, nor pick the same number.
    conn.execute(
        text("SELECT pg_advisory_xact_lock(:cls, hashtext(:subject))"),
        {"cls": _LOCK_CLASS, "subject": subject},
    )


def schema_id_of(conn: Connection, fingerprint: str, *, required: bool = False) -> int | None:
    """The global id of the schema with ``fingerprint``; None (or, if required, raise)."""
    result = conn.execute(
        text("SELECT id FROM registry_schema WHERE fingerprint = :f"), {"f": fingerprint}
    )
    return result.scalar_one() if required else result.scalar()


def visible(rows: list[SubjectVersion], deleted: bool) -> list[SubjectVersion]:
    """``rows`` without the soft-deleted ones, unless ``deleted`` asks for them."""
    return rows if deleted else [r for r in rows if not r.deleted]


def pick(rows: list[SubjectVersion], subject: str, version: int | None) -> SubjectVersion:
    """The row of ``version`` (None: latest) among ``rows``, with Confluent's 404s."""
    if not rows:
        raise subject_not_found(subject)
    if version is None:
        return rows[-1]
    for row in rows:
        if row.version == version:
            return row
    raise version_not_found(version)


def _rows(conn: Connection, where: str, **params: Any) -> list[SubjectVersion]:
    result = conn.execute(
        text(f"{_VERSION_ROWS} WHERE {where} ORDER BY v.subject, v.version"), params
    )
    return [SubjectVersion(*row) for row in result]
