"""Which normalizer turns the records of which raw topic into canonical entities.

A normalizer module (``stages/normalize/<source>_<entity>.py``) declares::

    TOPICS: tuple[str, ...] = ("raw.onec.warehouse",)   # logical names from topics.yaml

    def normalize(value: dict, headers: Mapping[str, str], ctx: Context) -> list[Canonical]:
        ...   # pure; raises Unnormalizable (an InvalidRecord) with the reason

and is found here by that attribute, so adding an entity touches no shared list. One raw
record may give several entities (a CommerceML order gives an order and counterparties)
or none (a record of no interest to the pipeline).
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import Any
from zoneinfo import ZoneInfo

import stages.normalize as package
from mmstream.models.base import Canonical
from mmstream.settings import CourierObjectSettings


@dataclass(frozen=True)
class Context:
    """What a normalizer may know besides the record: the sources' time zones."""

    onec_tz: ZoneInfo = field(default_factory=lambda: ZoneInfo("Europe/Moscow"))
    portal_tz: ZoneInfo = field(default_factory=lambda: ZoneInfo("Europe/Moscow"))
    # Which Bitrix24 tasks, items and deals are couriers' objects, and their field names.
    couriers: CourierObjectSettings = field(default_factory=CourierObjectSettings, hash=False)
    # Only customer orders with a delivery address become delivery tasks (settings.flows).
    delivery_needs_address: bool = True


Normalizer = Callable[[dict[str, Any], Mapping[str, str], Context], list[Canonical]]


@cache
def normalizers() -> dict[str, Normalizer]:
    """Logical raw topic -> its normalizer. Two modules claiming one topic is a bug."""
    found: dict[str, Normalizer] = {}
    for info in pkgutil.iter_modules(package.__path__):
        module = importlib.import_module(f"{package.__name__}.{info.name}")
        for topic in getattr(module, "TOPICS", ()):
            if topic in found:
                raise RuntimeError(f"two normalizers claim {topic}: {module.__name__}")
            found[topic] = module.normalize
    return found
