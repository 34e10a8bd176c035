"""Bridge fixtures: the real app (lifespan included) on the session broker."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from connectors.ingress.app import create_app
from connectors.ingress.auth import mint_token
from mmstream.kafka.admin import apply
from mmstream.topics import load_catalog


@pytest.fixture
def bridge_settings(settings):
    apply(settings, load_catalog(settings.topics_file))
    return settings


@pytest.fixture
def bridge(bridge_settings):
    with TestClient(create_app(bridge_settings), raise_server_exceptions=False) as client:
        yield client


@pytest.fixture
def token(bridge_settings):
    return mint_token(bridge_settings.auth, subject="onec-test", roles=["1c"])
