from __future__ import annotations

import pytest

from mmstream.kafka.admin import apply
from mmstream.topics import load_catalog


@pytest.fixture
def relay_settings(settings, registry_url):
    """Test settings with the schema registry and every declared topic created."""
    s = settings.model_copy(update={"schema_registry_url": registry_url})
    apply(s, load_catalog(s.topics_file))
    return s
