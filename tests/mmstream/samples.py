"""An instance of any canonical model with every field filled, for tests that must cover
every model and every field kind without a hand-written builder per entity."""

from __future__ import annotations

import types
import typing
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any
from uuid import UUID

from pydantic import BaseModel

MSK = timezone(timedelta(hours=3))


def value_for(tp: Any, n: int) -> Any:
    """A value of annotation ``tp`` within every bound; ``n`` varies it between fields.
    Decimals have more places than any scale, so the models round them."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        return value_for(next(a for a in args if a is not type(None)), n)
    if origin is typing.Annotated:
        return value_for(args[0], n)
    if origin is typing.Literal:
        return args[n % len(args)]
    if origin in (tuple, list):
        return tuple(value_for(args[0], n + i) for i in range(2))
    if origin is dict:
        return {"onec": f"ключ-{n}", "bitrix24": str(n)}
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return sample(tp, n)
    simple: dict[Any, Any] = {
        str: f"Текст №{n}",
        bool: n % 2 == 0,
        int: 40 + n,
        float: 1.5 + n,
        UUID: UUID(int=n + 1),
        Decimal: Decimal(f"{1234 + n}.567891"),
        datetime: datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=MSK) + timedelta(hours=n),
        date: date(2026, 1, 2) + timedelta(days=n),
    }
    return simple[tp]


def sample(model: type[BaseModel], n: int = 0) -> BaseModel:
    """``model`` with every field set (required or not)."""
    return model(
        **{
            name: value_for(info.annotation, n + i)
            for i, (name, info) in enumerate(model.model_fields.items())
        }
    )
