"""Schemathesis against the bridge as it is served (`mmctl bridge`, a process) on the real broker
and PostgreSQL, with a valid token: every documented operation, valid and invalid inputs,
bounded and derandomized. No answer may be a 5xx; answers must match the document."""

from __future__ import annotations

import hypothesis
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from connectors.ingress.auth import mint_token
from devstack.stack.env import settings_env
from mmstream.kafka.admin import apply
from mmstream.serve import free_port
from mmstream.topics import load_catalog
from tests.support.processes import Proc, wait_http

# Per operation and generation mode. With ~10 operations the run stays well under a minute.
MAX_EXAMPLES = 25
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


@pytest.fixture
def served_bridge(settings, tmp_path):
    """(base URL, process) of a bridge process; its rate limit is out of the fuzzer's way."""
    settings = settings.model_copy(
        update={
            "ingress": settings.ingress.model_copy(
                update={
                    "port": free_port(),
                    "client_rate_per_s": 100_000.0,
                    "client_burst": 100_000,
                    "unverified_rate_per_s": 100_000.0,
                    "unverified_burst": 100_000,
                }
            )
        }
    )
    apply(settings, load_catalog(settings.topics_file))
    proc = Proc(
        "bridge", ["bridge"], {**settings_env(settings), "MM_LOG_LEVEL": "INFO"}, tmp_path
    ).start()
    url = f"http://{settings.ingress.host}:{settings.ingress.port}"
    try:
        wait_http(f"{url}/health/ready", proc)
        yield url, proc, mint_token(settings.auth, subject="fuzz-1c", roles=["1c", "courier"])
    finally:
        proc.stop()


def _fuzz(operation, mode, url: str, token: str) -> str | None:
    """Run one operation in one mode; the failure's text, or None."""

    @hypothesis.settings(
        max_examples=MAX_EXAMPLES,
        derandomize=True,
        deadline=None,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(mode))
    def run(case) -> None:
        response = case.call(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=30)
        case.validate_response(response, checks=CHECKS)

    try:
        run()
    except Unsatisfiable:  # nothing to make invalid (no parameters, no body)
        return None
    except (AssertionError, BaseExceptionGroup) as exc:  # schemathesis' FailureGroup
        return f"{operation.label} [{mode.value}]: {exc}"
    return None


def test_no_operation_answers_a_server_error_or_off_the_document(served_bridge):
    url, proc, token = served_bridge
    schema = schemathesis.openapi.from_url(f"{url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 5
    failures = [
        failure
        for operation in operations
        for mode in (schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE)
        if (failure := _fuzz(operation, mode, url, token))
    ]
    assert proc.alive(), proc.tail()
    errors = [
        line
        for line in proc.tail(2000).splitlines()
        if '"level": "INFO"' not in line and '"level": "WARNING"' not in line
    ]
    assert not failures, (
        "\n\n".join(failures) + "\n--- bridge errors ---\n" + "\n".join(errors[-60:])
    )
