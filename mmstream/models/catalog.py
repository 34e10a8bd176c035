"""Every canonical entity model, by entity name (found by the ``Canonical`` base, so adding
an entity module is enough)."""

from __future__ import annotations

import importlib
import pkgutil
from functools import cache

import mmstream.models as package
from mmstream.models.base import Canonical


@cache
def entity_models() -> dict[str, type[Canonical]]:
    """Entity name -> model class, for every module of this package."""
    found: dict[str, type[Canonical]] = {}
    for info in pkgutil.iter_modules(package.__path__):
        module = importlib.import_module(f"{package.__name__}.{info.name}")
        for value in vars(module).values():
            if (
                isinstance(value, type)
                and issubclass(value, Canonical)
                and value is not Canonical
                and value.__module__ == module.__name__
                and "ENTITY" in vars(value)
            ):
                if value.ENTITY in found:
                    raise RuntimeError(f"two models claim entity {value.ENTITY}")
                found[value.ENTITY] = value
    return found
