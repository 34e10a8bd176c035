"""Text and JSON views: failure metadata once, original headers, payload pretty-printed."""

from __future__ import annotations

import json

from mmstream.dlq.entry import DlqEntry
from mmstream.ops.dlq_render import entry_json, entry_text, plan_text
from mmstream.settings import Settings
from mmstream.topics import load_catalog
from stages.dlq.replay import build_plan
from stages.dlq.select import Selection
from tests.stages.dlq.conftest import parked

SETTINGS = Settings(_env_file=None, kafka={"topic_prefix": "t1."})


def entry(offset: int = 0, **kwargs) -> DlqEntry:
    out = parked(SETTINGS, offset=offset, **kwargs)
    return DlqEntry.build(out.topic, out.partition, offset, out.key, out.value, out.headers, None)


def test_entry_text_shows_reason_source_original_headers_and_indented_json():
    text = entry_text(entry(offset=3, key="p1", value='{"Description": "Мойка"}'.encode()))
    assert text.startswith("== t1.dlq.normalize/0/3\n")
    assert "code=invalid_record class=InvalidRecord retriable=false" in text
    assert "message    DataVersion: too short" in text
    assert "source     t1.raw.onec.product/0/3" in text
    assert "headers    ce_id: p1" in text and "content-type: application/json" in text
    assert "dlq.stage" not in text  # failure headers are shown once, as metadata
    assert '{\n  "Description": "Мойка"\n}' in text


def test_entry_json_is_serialisable_and_keeps_failure_apart_from_headers():
    view = entry_json(entry(key="p1"))
    json.dumps(view)
    assert view["failure"]["stage"] == "sink"
    assert [h[0] for h in view["headers"]] == ["ce_id", "content-type"]
    assert view["payload"]["json"] == {"Ref_Key": "p1", "DataVersion": ""}


def test_plan_text_lists_the_first_records_and_totals():
    catalog = load_catalog(SETTINGS.topics_file)
    cluster = {SETTINGS.topic(n): s.partitions for n, s in catalog.topics.items()}
    entries = [entry(offset=i, key=f"k{i}") for i in range(60)]
    plan = build_plan(
        SETTINGS,
        catalog,
        cluster,
        SETTINGS.topic("dlq.normalize"),
        entries,
        Selection(reason="invalid_record"),
    )
    text = plan_text(plan, {"r-0": 2})
    assert (
        f"replay {plan.replay_id} of t1.dlq.normalize (reason=invalid_record): 60 record(s)" in text
    )
    assert "0/0" in text and "0/49" in text and "0/50 " not in text
    assert "… and 10 more" in text and "to t1.raw.onec.product: 60" in text
    assert "2 of these record(s) were already replayed by r-0" in text
