"""Fixtures of the enrichment tests: the worker's parts in-process against the emulator
(``harness``), or the emulator, the bridge and the worker as processes (``enrich_stack``)."""

from __future__ import annotations

import pytest

from mmstream.kafka.admin import apply
from mmstream.topics import load_catalog
from tests.stages.enrich.harness import Harness
from tests.support.bitrix24 import EnrichStack, declare_dlq, enrich_settings


@pytest.fixture
def enrich_stack(settings, tmp_path):
    """An EnrichStack whose processes are stopped after the test."""
    stack = EnrichStack(enrich_settings(settings, tmp_path), tmp_path)
    yield stack
    stack.stop()


@pytest.fixture
def harness(settings, tmp_path):
    """A Harness on this test's topics (the DLQ declared) and database."""
    settings = declare_dlq(settings, tmp_path)
    apply(settings, load_catalog(settings.topics_file))
    return Harness(settings)
