"""What the courier-flow end-to-end tests share: the funnels and the ``stack`` fixture."""

from __future__ import annotations

import pytest

from mmstream.settings import CourierObjectSettings, Settings
from tests.support.bitrix24 import EnrichStack, with_tokens

INSTANT, RETURNS = 3, 5  # the couriers' deal funnels (CATEGORY_ID)


@pytest.fixture
def stack_settings(pipeline) -> Settings:
    """The pipeline's settings plus the portal's event token, the couriers' funnels and a
    retry budget that outlasts records waiting on the delayed path. A test module that needs
    more overrides this fixture, asking for it by name."""
    settings = with_tokens(
        pipeline.settings,
        couriers=CourierObjectSettings(
            instant_order_category_id=INSTANT, return_category_id=RETURNS
        ),
    )
    return settings.model_copy(
        update={"retry": settings.retry.model_copy(update={"max_attempts": 60, "budget_s": 90})}
    )


@pytest.fixture
def stack(pipeline, stack_settings):
    """The pipeline's processes and emulators on ``stack_settings``, stopped after the test."""
    stack = EnrichStack(stack_settings, pipeline.log_dir)
    yield stack
    stack.stop()
