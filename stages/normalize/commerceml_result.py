"""1С's answers, through the exchange with site, to the instant orders and returns the
middleware exported (``raw.onec.exchange_result``: the bridge publishes there every
document of a sale file whose Ид is one the middleware exported) -> 1С's version of the
document and the middleware's status (commerceml_customer_order.answer_versions). Pure."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mmstream.models.base import Canonical
from stages.normalize.commerceml_customer_order import answer_versions
from stages.normalize.registry import Context

TOPICS = ("raw.onec.exchange_result",)


def normalize(value: dict[str, Any], headers: Mapping[str, str], ctx: Context) -> list[Canonical]:
    """One answer -> the versions it means (Unnormalizable names what is wrong)."""
    return answer_versions(value, ctx)
