"""classify(): the one place where third-party errors become transient or permanent."""

from __future__ import annotations

import psycopg
import psycopg.errors
import pytest
import sqlalchemy.exc as sa_exc

from mmstream.errors import (
    BrokerUnavailable,
    ConfigurationError,
    DatabaseRefused,
    DatabaseUnavailable,
    InvalidRecord,
    MMStreamError,
    PermanentError,
    TopicMissing,
    TransientError,
    ValueRejected,
    classify,
    dead_letterable,
)


@pytest.mark.parametrize(
    "exc",
    [
        psycopg.OperationalError("connection refused"),
        psycopg.errors.AdminShutdown("terminating connection due to administrator command"),
        psycopg.errors.SerializationFailure("could not serialize access"),
        psycopg.errors.DeadlockDetected("deadlock detected"),
        sa_exc.OperationalError("SELECT 1", {}, psycopg.OperationalError("server closed")),
        sa_exc.InterfaceError("SELECT 1", {}, Exception("connection already closed")),
        sa_exc.TimeoutError("QueuePool limit of size 10 overflow 10 reached"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_database_connection_errors_are_database_unavailable(exc):
    err = classify(exc)
    assert type(err) is DatabaseUnavailable
    assert err.retriable is True and err.code == "database_unavailable"
    assert err.__cause__ is exc
    assert str(err).startswith(f"{type(exc).__name__}: ")


def test_an_invalidated_connection_is_database_unavailable():
    exc = sa_exc.DBAPIError(
        "SELECT 1", {}, psycopg.DatabaseError("lost"), connection_invalidated=True
    )
    assert type(classify(exc)) is DatabaseUnavailable


@pytest.mark.parametrize(
    "exc",
    [
        sa_exc.IntegrityError("INSERT", {}, psycopg.errors.UniqueViolation("duplicate key")),
        psycopg.errors.InvalidTextRepresentation("invalid input syntax for type uuid"),
        psycopg.errors.NumericValueOutOfRange("numeric field overflow"),
        psycopg.errors.StringDataRightTruncation("value too long for type character varying(10)"),
        psycopg.errors.CheckViolation("violates check constraint"),
        sa_exc.DataError("INSERT", {}, psycopg.errors.NumericValueOutOfRange("overflow")),
    ],
    ids=lambda e: type(e).__name__,
)
def test_a_value_the_database_refuses_is_the_records_fault(exc):
    err = classify(exc)
    assert type(err) is ValueRejected and isinstance(err, InvalidRecord)
    assert err.retriable is False and err.infrastructure is False
    assert err.code == "value_rejected" and dead_letterable(exc)


@pytest.mark.parametrize(
    "exc",
    [
        psycopg.errors.UndefinedTable('relation "outbox" does not exist'),
        psycopg.errors.UndefinedColumn('column "x" does not exist'),
        psycopg.errors.InsufficientPrivilege("permission denied for table outbox"),
        sa_exc.ProgrammingError("SELECT", {}, psycopg.errors.SyntaxError("syntax error")),
    ],
    ids=lambda e: type(e).__name__,
)
def test_a_statement_the_database_refuses_for_no_record_stops_the_worker(exc):
    err = classify(exc)
    assert type(err) is DatabaseRefused
    assert err.retriable is False and err.infrastructure is True
    assert not dead_letterable(exc)


@pytest.mark.parametrize(
    "exc",
    [
        psycopg.OperationalError("connection refused"),
        psycopg.InterfaceError("the connection is closed"),
        BrokerUnavailable("no ack"),
        ConfigurationError("no db"),
        TopicMissing("raw"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_infrastructure_errors_are_never_dead_lettered(exc):
    assert classify(exc).infrastructure is True
    assert not dead_letterable(exc)


@pytest.mark.parametrize(
    "exc",
    [ValueError("bad"), InvalidRecord("x"), ArithmeticError("overflow")],
    ids=lambda e: type(e).__name__,
)
def test_record_and_unknown_errors_are_dead_lettered(exc):
    assert dead_letterable(exc)


@pytest.mark.parametrize(
    "exc",
    [
        ConnectionError("reset"),
        ConnectionRefusedError(111, "refused"),
        ConnectionResetError("peer"),
        TimeoutError(),
        OSError(113, "no route"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_network_errors_are_transient(exc):
    err = classify(exc)
    assert type(err) is TransientError
    assert err.retriable is True and err.code == "transient"
    assert err.__cause__ is exc


@pytest.mark.parametrize(
    "exc",
    [
        ValueError("bad"),
        KeyError("field"),
        TypeError("x"),
        ZeroDivisionError(),
        RuntimeError("bug"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_unknown_errors_are_permanent(exc):
    err = classify(exc)
    assert type(err) is PermanentError
    assert err.retriable is False and err.code == "permanent"
    assert err.__cause__ is exc
    assert type(exc).__name__ in str(err)


def test_the_original_message_is_kept():
    assert str(classify(ValueError("Ref_Key is not a GUID"))) == "ValueError: Ref_Key is not a GUID"


@pytest.mark.parametrize(
    "exc",
    [
        InvalidRecord("bad record"),
        BrokerUnavailable("no ack"),
        DatabaseUnavailable("down"),
        ConfigurationError("no db"),
        TopicMissing("raw"),
        TransientError("x"),
        PermanentError("y"),
        MMStreamError("root"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_project_errors_pass_through_unchanged(exc):
    assert classify(exc) is exc


def test_retriable_flags_of_the_hierarchy():
    assert (
        BrokerUnavailable.retriable and DatabaseUnavailable.retriable and TransientError.retriable
    )
    assert not InvalidRecord.retriable and not ConfigurationError.retriable
    assert not PermanentError.retriable and not MMStreamError.retriable
    assert issubclass(InvalidRecord, PermanentError)
    assert issubclass(TopicMissing, ConfigurationError)
    codes = [
        c.code
        for c in (
            MMStreamError,
            ConfigurationError,
            TransientError,
            PermanentError,
            BrokerUnavailable,
            DatabaseUnavailable,
            InvalidRecord,
            TopicMissing,
        )
    ]
    assert len(set(codes)) == len(codes)  # codes are distinct: DLQ headers and alerts key on them
