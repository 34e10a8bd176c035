"""The one exception root of the project and the transient/permanent decision.

Every error the code raises on purpose derives from :class:`MMStreamError`. Whether an
error is worth retrying is a class attribute (``retriable``), as in aiokafka; retry loops
and the dead-letter path read it and nothing else. :func:`classify` turns third-party
exceptions (database driver, Kafka client, HTTP client) into this hierarchy, in one place.
"""

from __future__ import annotations


class MMStreamError(Exception):
    """Root of every error raised by MasterMobile Stream."""

    retriable: bool = False
    #: Machine-readable code, used in DLQ headers, logs and HTTP error bodies.
    code: str = "internal_error"
    #: Seconds the other side asked us to wait before retrying, when it said so.
    retry_after: float | None = None


class ConfigurationError(MMStreamError):
    """The settings are missing or contradictory. Fix the environment and restart."""

    code = "configuration_error"


class TransientError(MMStreamError):
    """A dependency is unavailable or slow; the same operation may succeed later."""

    retriable = True
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


class InvalidRecord(PermanentError):
    """A record could not be parsed or normalized. It goes to the DLQ with this message."""

    code = "invalid_record"


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
    if isinstance(exc, (psycopg.OperationalError, sa_exc.OperationalError, sa_exc.InterfaceError,
                        sa_exc.TimeoutError)):
        return _wrap(DatabaseUnavailable, exc)
    if isinstance(exc, sa_exc.DBAPIError) and exc.connection_invalidated:
        return _wrap(DatabaseUnavailable, exc)
    if isinstance(exc, (ConnectionError, TimeoutError, OSError)):
        return _wrap(TransientError, exc)
    return _wrap(PermanentError, exc)


def _wrap(cls: type[MMStreamError], exc: BaseException) -> MMStreamError:
    err = cls(f"{type(exc).__name__}: {exc}")
    err.__cause__ = exc
    return err
