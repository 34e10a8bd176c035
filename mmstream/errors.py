"""The one exception root of the project and the transient/permanent decision.

Every error the code raises on purpose derives from :class:`MMStreamError`. Whether an
error is worth retrying is a class attribute (``retriable``), as in aiokafka; retry loops
and the dead-letter path read it and nothing else. :func:`classify` turns third-party
exceptions (database driver, Kafka client, HTTP client) into this hierarchy, in one place.

Whether a failure is the record's or the environment's is the other attribute
(``infrastructure``): a stage dead-letters a record only for an error that is neither
retriable nor infrastructure (:func:`dead_letterable`); for the others it waits (retriable)
or stops the process so the batch replays once the database or broker is fixed.
"""

from __future__ import annotations


class MMStreamError(Exception):
    """Root of every error raised by MasterMobile Stream."""

    retriable: bool = False
    #: The fault is in our own environment (database, broker, settings), not in the record:
    #: the record is never dead-lettered for it (design.md invariant 9).
    infrastructure: bool = False
    #: Machine-readable code, used in DLQ headers, logs and HTTP error bodies.
    code: str = "internal_error"
    #: Seconds the other side asked us to wait before retrying, when it said so.
    retry_after: float | None = None


class ConfigurationError(MMStreamError):
    """The settings are missing or contradictory. Fix the environment and restart."""

    code = "configuration_error"
    infrastructure = True


class TransientError(MMStreamError):
    """A dependency is unavailable or slow; the same operation may succeed later."""

    retriable = True
    infrastructure = True
    code = "transient"


class PermanentError(MMStreamError):
    """Retrying the same input cannot succeed; the record belongs in a dead-letter topic."""

    code = "permanent"


class BrokerUnavailable(TransientError):
    """Kafka did not acknowledge in time. Check the brokers and the network; clients retry."""

    code = "broker_unavailable"


class DatabaseUnavailable(TransientError):
    """PostgreSQL refused or dropped the connection. Workers wait and retry the same batch."""

    code = "database_unavailable"


class BrokerRefused(PermanentError):
    """Kafka refused a write for a reason no record causes and waiting does not fix
    (authorization, a topic's configuration). Nothing is dead-lettered: the worker stops so
    the batch replays once the cluster is fixed."""

    code = "broker_refused"
    infrastructure = True


class InvalidRecord(PermanentError):
    """A record could not be parsed or normalized. It goes to the DLQ with this message."""

    code = "invalid_record"


class ValueRejected(InvalidRecord):
    """A later stage cannot carry one of the record's values: the database refused it (out
    of a column's range, too long, a failed check) or the Avro encoder could not write it.
    The record goes to its stage's DLQ with this message; the rest of its batch goes on."""

    code = "value_rejected"


class DatabaseRefused(MMStreamError):
    """PostgreSQL refused a statement for a reason no record causes and waiting does not fix
    (a missing table or column, a permission, a bug in a statement). Nothing is
    dead-lettered: the worker stops so the batch replays once the schema or grant is fixed
    (run the migrations, check the role)."""

    code = "database_refused"
    infrastructure = True


class CircuitOpen(TransientError):
    """A target's circuit breaker is open: recent calls failed, so none are made for a while.

    Nothing was sent. Retry after ``retry_after`` seconds; if it stays open, check the
    target's health and the ``mm_circuit_state`` gauge.
    """

    code = "circuit_open"

    def __init__(self, target: str, retry_after: float) -> None:
        super().__init__(f"circuit for {target} is open; retry in {retry_after:.1f} s")
        self.target = target
        self.retry_after = retry_after

    def __reduce__(self):
        return (type(self), (self.target, self.retry_after))


class TopicMissing(ConfigurationError):
    """A topic the code needs does not exist. Run `mmctl topics apply` against the cluster."""

    code = "topic_missing"


def classify(exc: BaseException) -> MMStreamError:
    """Map any exception to the project hierarchy; unknown errors count as permanent.

    Unknown errors are permanent on purpose: retrying a bug forever blocks a partition,
    while a DLQ record with the traceback's message is visible and replayable.
    """
    if isinstance(exc, MMStreamError):
        return exc
    import psycopg
    import sqlalchemy.exc as sa_exc

    # sa_exc.TimeoutError: no pooled connection came free in time (the deliveries in
    # flight outnumber the pool) — a wait, not a fault of the record.
    # psycopg.InterfaceError: the raw connection (COPY) was closed under us.
    if isinstance(
        exc,
        (
            psycopg.OperationalError,
            psycopg.InterfaceError,
            sa_exc.OperationalError,
            sa_exc.InterfaceError,
            sa_exc.TimeoutError,
        ),
    ):
        return _wrap(DatabaseUnavailable, exc)
    if isinstance(exc, sa_exc.DBAPIError) and exc.connection_invalidated:
        return _wrap(DatabaseUnavailable, exc)
    driver = exc.orig if isinstance(exc, sa_exc.DBAPIError) else exc
    # What the server said about the record's values (SQLSTATE classes 22 and 23): the
    # record's fault. Any other refusal of a statement is the deployment's.
    if isinstance(driver, (psycopg.DataError, psycopg.IntegrityError)):
        return _wrap(ValueRejected, exc)
    if isinstance(driver, psycopg.DatabaseError):
        return _wrap(DatabaseRefused, exc)
    if isinstance(exc, (ConnectionError, TimeoutError, OSError)):
        return _wrap(TransientError, exc)
    return _wrap(PermanentError, exc)


def dead_letterable(exc: BaseException) -> bool:
    """True when ``exc`` is the record's fault: the record goes to its DLQ and the partition
    moves on. False for what a stage must wait out or stop for (database, broker, settings)."""
    err = classify(exc)
    return not (err.retriable or err.infrastructure)


def _wrap(cls: type[MMStreamError], exc: BaseException) -> MMStreamError:
    err = cls(f"{type(exc).__name__}: {exc}")
    err.__cause__ = exc
    return err
