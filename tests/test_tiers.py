"""The test tiers: which tests `make test-unit` runs (tests/conftest.py marks the rest)."""

from __future__ import annotations

import subprocess
import sys
import types
from pathlib import Path

import pytest

from tests.conftest import pytest_collection_modifyitems
from tests.support import services

REPO = Path(__file__).resolve().parents[1]
UNIT = "not integration and not e2e"  # the Makefile's test-unit expression


class _Item:
    """What the hook reads of a collected test: its fixture closure, its module, its marks."""

    def __init__(self, fixturenames: list[str], module: types.ModuleType) -> None:
        self.fixturenames = fixturenames
        self.module = module
        self.marks: list[str] = []

    def add_marker(self, mark) -> None:
        self.marks.append(mark.name)


def _module(name: str, **names) -> types.ModuleType:
    module = types.ModuleType(name)
    vars(module).update(names)
    return module


def test_a_test_reaching_a_service_through_any_fixture_is_integration():
    pure = _module("test_pure", json=__import__("json"))
    items = [
        _Item(["request", "settings", "kafka_bootstrap", "db_url", "databases"], pure),
        _Item(["registry_url", "databases", "postgres_server"], pure),
        _Item(["tmp_path", "monkeypatch"], pure),
    ]
    pytest_collection_modifyitems(None, items)
    assert [i.marks for i in items] == [["integration"], ["integration"], []]


def test_a_module_that_starts_a_server_itself_is_integration():
    own = _module("test_own_server", start_postgres=services.start_postgres)
    also = _module("test_own_broker", EmbeddedBroker=services.EmbeddedBroker)
    items = [_Item(["tmp_path"], own), _Item([], also)]
    pytest_collection_modifyitems(None, items)
    assert [i.marks for i in items] == [["integration"], ["integration"]]


@pytest.mark.parametrize("start", [services.start_postgres, services.start_broker])
def test_the_unit_tier_refuses_to_start_a_server(start, monkeypatch, tmp_path):
    monkeypatch.setenv("TEST_TIER", "unit")
    with pytest.raises(RuntimeError, match="integration tier"):
        start(tmp_path)


def test_the_unit_expression_selects_only_the_pure_tests_of_real_files():
    files = [
        "tests/mmstream/test_errors.py",  # pure
        "tests/stages/sink/test_product_store.py",  # db_url
        "tests/devstack/stack/test_postgres_private.py",  # starts PostgreSQL itself
        "tests/e2e/test_product_flow.py",
    ]  # e2e
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "--collect-only",
            "-q",
            "-p",
            "no:cacheprovider",
            "-m",
            UNIT,
            *files,
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    ids = [line for line in out.stdout.splitlines() if "::" in line]
    assert {i.split("::")[0] for i in ids} == {
        "tests/mmstream/test_errors.py",
        "tests/stages/sink/test_product_store.py",
    }, ids
    names = {i.split("::")[1].split("[")[0] for i in ids}
    # The store's pure logic stays in the unit tier; its merges against PostgreSQL do not.
    assert "test_a_1c_change_keeps_the_event_id_the_bridge_answered_with" in names
    assert "test_new_products_get_a_row_and_one_outbox_entry_each" not in names
