"""AdvanceReport: the accountable person, the advances reported and the expense lines."""

from __future__ import annotations

import json
from pathlib import Path

from mmstream.models.advance_report import AdvanceReport

ROOT = Path(__file__).resolve().parents[3]


def test_entity_and_fields():
    assert AdvanceReport.ENTITY == "advance_report"
    assert AdvanceReport.model_fields["employee_id"].json_schema_extra == {"ref": "employee"}


def test_schema_has_arrays_of_ids_and_of_both_line_kinds():
    schema = json.loads((ROOT / "avro/advance_report.avsc").read_text("utf-8"))
    fields = {f["name"]: f["type"] for f in schema["fields"]}
    assert fields["advance_ids"] == {
        "type": "array",
        "items": {"type": "string", "logicalType": "uuid"},
    }
    assert fields["lines"]["items"]["name"] == "GoodsLine"
    assert fields["supplier_payments"]["items"]["name"] == "PaymentLine"
