"""CommerceML product records reach the canonical product through the same parse()."""

from __future__ import annotations

import json

import pytest

from mmstream.errors import InvalidRecord
from streams.normalize.onec_product import parse

BASE = {"_source": "commerceml", "id": "7d2dcab3-e453-11e6-9483-00155d020201", "characteristic_id": None,
        "name": " Astra Linux Special Edition ", "code": "42", "article": "ALSE-1", "description": "ОС",
        "deleted": False, "version": "a" * 64}


def _parse(**changes):
    return parse(json.dumps({**BASE, **changes}, ensure_ascii=False).encode())


def test_base_product_maps_to_the_canonical_product():
    p = _parse()
    assert str(p.id) == BASE["id"] and p.name == "Astra Linux Special Edition"
    assert (p.code, p.article, p.full_name, p.version, p.deleted) == ("42", "ALSE-1", "ОС", "a" * 64, False)


def test_deletion_status_marks_the_product_deleted():
    assert _parse(deleted=True).deleted is True


@pytest.mark.parametrize("changes, reason", [
    ({"characteristic_id": "c1"}, "characteristics"),
    ({"id": "ORDER_DELIVERY"}, "not a 1C GUID"),
    ({"name": "  "}, "without name"),
    ({"name": "a\x00b"}, "NUL"),
])
def test_records_the_canonical_model_cannot_hold_are_invalid(changes, reason):
    with pytest.raises(InvalidRecord, match=reason):
        _parse(**changes)
