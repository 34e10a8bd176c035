"""Invariant 10: every declared raw/egress topic has a worker that consumes it, and a worker
refuses to start on a topic file that declares one without a reader."""

from pathlib import Path

import pytest
import yaml

from mmstream.errors import ConfigurationError
from mmstream.settings import REPO_ROOT
from mmstream.topics import load_catalog
from stages.readers import readers, require_readers, unread
from tests.mmstream.cli.test_secrets_cli import Listener, _reachable_env
from tests.support.mmctl import run_mmctl

SHIPPED = REPO_ROOT / "topics.yaml"


def test_every_shipped_raw_and_egress_topic_has_a_reader():
    catalog = load_catalog(SHIPPED)
    assert unread(catalog) == []
    who = readers(catalog)
    assert who["raw.onec.stock"] == "sink-entities"
    assert who["raw.bitrix24.event"] == "enrich-bitrix24"
    # Products take the one entity path: raw and Bitrix24 echoes alike.
    assert who["raw.onec.product"] == "sink-entities"
    assert who["raw.bitrix24.product"] == "sink-entities"
    assert who["egress.bitrix24.product"] == "egress"


def _with_extra_raw_topic(tmp_path: Path) -> Path:
    doc = yaml.safe_load(SHIPPED.read_text())
    doc["topics"]["raw.bitrix24.lead"] = {
        "description": "nobody reads this",
        "entity": "lead",
        "role": "raw",
        "partitions": 6,
    }
    path = tmp_path / "topics.yaml"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True))
    return path


def test_a_raw_topic_without_a_reader_is_refused(tmp_path):
    catalog = load_catalog(_with_extra_raw_topic(tmp_path))
    assert unread(catalog) == ["raw.bitrix24.lead"]
    with pytest.raises(ConfigurationError, match="raw.bitrix24.lead"):
        require_readers(catalog)


@pytest.mark.parametrize("role", ["sink-entities", "egress", "enrich-bitrix24"])
def test_no_worker_starts_on_a_topic_file_with_an_unread_topic(tmp_path, monkeypatch, role):
    kafka, db = Listener(), Listener()
    try:
        secret = "b3f1c0a9d2e84f6a9c1d7e2b5a8f3c60"
        env = _reachable_env(
            kafka,
            db,
            MM_TOPICS_FILE=str(_with_extra_raw_topic(tmp_path)),
            MM_BITRIX24__WEBHOOK_URL=f"https://p.bitrix24.ru/rest/1/{secret}/",
            # A real-looking 1С address: egress refuses the development default first.
            MM_ONEC__BASE_URL="https://onec.example.ru/trade/hs/mm",
        )
        proc = run_mmctl(["worker", role], env, tmp_path, monkeypatch)
        assert proc.returncode != 0, proc.stdout + proc.stderr
        # The refusal is a SystemExit message: the interpreter prints it on stderr, click's
        # runner (mmctl in this process) on stdout.
        said = proc.stdout + proc.stderr
        assert "no worker consumes" in said and "raw.bitrix24.lead" in said, said
        assert not kafka.connected() and not db.connected()
    finally:
        kafka.close()
        db.close()
