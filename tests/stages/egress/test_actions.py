"""The egress action registry against the topic file: every declared egress topic has an
action and every action a declared topic, and a mismatch is refused with its names."""

from __future__ import annotations

from pathlib import Path

import pytest

from mmstream.errors import ConfigurationError
from mmstream.topics import TopicCatalog, TopicSpec, load_catalog
from stages.egress.actions import ACTIONS, check_coverage, egress_topics, uncovered

TOPICS = Path(__file__).resolve().parents[3] / "topics.yaml"


def test_the_shipped_topic_file_and_the_actions_agree():
    catalog = load_catalog(TOPICS)
    assert uncovered(catalog) == ([], [])
    check_coverage(catalog)
    assert set(egress_topics(catalog)) == set(ACTIONS)


def test_every_declared_egress_topic_has_its_dlq():
    catalog = load_catalog(TOPICS)
    for name in egress_topics(catalog):
        assert "dlq." + name in catalog.topics, name


def _catalog(*names: str) -> TopicCatalog:
    return TopicCatalog({n: TopicSpec(n, 6, 1, role="egress") for n in names}, {})


def test_a_topic_without_an_action_is_refused_by_name():
    with pytest.raises(ConfigurationError, match="egress.onec.invoice"):
        check_coverage(_catalog(*ACTIONS, "egress.onec.invoice"))


def test_an_action_without_a_topic_is_refused_by_name():
    dropped = next(iter(ACTIONS))
    with pytest.raises(ConfigurationError, match=dropped.replace(".", r"\.")):
        check_coverage(_catalog(*(n for n in ACTIONS if n != dropped)))
