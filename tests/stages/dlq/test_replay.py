"""Replay plans: original bytes and headers back to the source partition, checked first."""

from __future__ import annotations

import json

import jsonpatch
import pytest

from mmstream.dlq.entry import DlqEntry
from mmstream.dlq.format import PREFIX
from mmstream.kafka.producer import Delivered
from mmstream.settings import Settings
from mmstream.topics import load_catalog
from stages.dlq.errors import PatchRefused, ReplayRefused
from stages.dlq.replay import REPLAY_HEADER, build_plan, offset_ranges, replay_headers
from stages.dlq.select import Selection
from tests.stages.dlq.conftest import parked

SETTINGS = Settings(_env_file=None, kafka={"topic_prefix": "t1."})
CATALOG = load_catalog(SETTINGS.topics_file)
CLUSTER = {SETTINGS.topic(n): s.partitions for n, s in CATALOG.topics.items()}
DLQ = SETTINGS.topic("dlq.normalize")


def as_entry(out, partition: int | None = None, offset: int = 0) -> DlqEntry:
    """A produced DLQ record as the reader would hand it back."""
    return DlqEntry.build(
        out.topic,
        out.partition if partition is None else partition,
        offset,
        out.key,
        out.value,
        out.headers,
        None,
    )


def plan(entries, **kwargs):
    return build_plan(
        SETTINGS, CATALOG, kwargs.pop("cluster", CLUSTER), DLQ, entries, Selection(), **kwargs
    )


def test_replay_headers_drop_failure_headers_and_add_the_replay_marker():
    entry = as_entry(parked(SETTINGS, partition=4, offset=77, key="p1"), offset=9)
    headers = replay_headers(entry, "r-1", patched=False)
    assert not [k for k, _ in headers if k.startswith(PREFIX)]
    assert headers[:-1] == [("ce_id", b"p1"), ("content-type", b"application/json")]
    name, raw = headers[-1]
    assert name == REPLAY_HEADER
    assert json.loads(raw) == {
        "id": "r-1",
        "dlq_topic": DLQ,
        "dlq_partition": 4,
        "dlq_offset": 9,
        "patched": False,
    }


def test_a_second_replay_replaces_the_first_marker():
    first = as_entry(parked(SETTINGS, key="p1"))
    again = DlqEntry.build(
        DLQ,
        0,
        5,
        first.key,
        first.value,
        [*replay_headers(first, "r-1", patched=False), ("dlq.stage", b"sink")],
        None,
    )
    headers = replay_headers(again, "r-2", patched=True)
    markers = [json.loads(v) for k, v in headers if k == REPLAY_HEADER]
    assert [m["id"] for m in markers] == ["r-2"] and markers[0]["dlq_offset"] == 5


def test_records_go_to_their_source_topic_and_partition_with_original_bytes_in_dlq_order():
    a = as_entry(parked(SETTINGS, partition=3, offset=40, key="a"), offset=2)
    b = as_entry(parked(SETTINGS, partition=3, offset=41, key="b"), offset=1)
    c = as_entry(
        parked(
            SETTINGS,
            source="egress.bitrix24.product",
            dlq="dlq.egress.bitrix24.product",
            stage="egress",
            partition=1,
            offset=5,
            key="c",
        ),
        offset=0,
    )
    p = plan([a, b, c])
    assert [i.entry.entity for i in p.items] == ["c", "b", "a"]  # (dlq partition, dlq offset)
    out = {i.entry.entity: i.record for i in p.items}
    assert (out["a"].topic, out["a"].partition, out["a"].key, out["a"].value) == (
        SETTINGS.topic("raw.onec.product"),
        3,
        b"a",
        a.value,
    )
    assert (out["c"].topic, out["c"].partition) == (SETTINGS.topic("egress.bitrix24.product"), 1)
    assert p.destinations() == {
        SETTINGS.topic("raw.onec.product"): 2,
        SETTINGS.topic("egress.bitrix24.product"): 1,
    }


def test_a_patch_changes_only_the_value():
    entry = as_entry(parked(SETTINGS, key="p1"))
    patch = jsonpatch.JsonPatch([{"op": "replace", "path": "/DataVersion", "value": "AAAA"}])
    p = plan([entry], patch=patch)
    item = p.items[0]
    assert json.loads(item.record.value) == {"Ref_Key": "p1", "DataVersion": "AAAA"}
    assert item.patched and item.record.key == b"p1"
    assert p.patch == [{"op": "replace", "path": "/DataVersion", "value": "AAAA"}]


def test_one_non_json_record_refuses_the_whole_patched_replay():
    good = as_entry(parked(SETTINGS, key="good"))
    garbage = as_entry(parked(SETTINGS, key="bad", value=b"\xff{not json"), offset=1)
    patch = jsonpatch.JsonPatch([{"op": "add", "path": "/x", "value": 1}])
    with pytest.raises(PatchRefused, match=f"{DLQ}/0/1"):
        plan([good, garbage], patch=patch)


@pytest.mark.parametrize(
    ("source", "cluster", "why"),
    [
        ("other.raw.onec.product", None, "not a declared topic"),
        ("t1.raw.onec.unknown", None, "not a declared topic"),
        ("t1.dlq.normalize", None, "itself a DLQ"),
        ("t1.raw.onec.product", {}, "does not exist on the cluster"),
        ("t1.raw.onec.product", {"t1.raw.onec.product": 2}, "partition 4 does not exist"),
    ],
)
def test_records_that_cannot_go_back_refuse_the_replay(source, cluster, why):
    out = parked(SETTINGS, partition=4, key="p1")
    headers = [(k, source.encode() if k == "dlq.source.topic" else v) for k, v in out.headers]
    entry = DlqEntry.build(DLQ, 4, 0, out.key, out.value, headers, None)
    with pytest.raises(ReplayRefused, match=why):
        plan([entry], cluster=CLUSTER if cluster is None else cluster)


def test_a_relay_record_is_refused_because_it_holds_the_stored_change_not_the_raw_record():
    out = parked(SETTINGS, dlq="dlq.relay", stage="relay", key="p1")
    with pytest.raises(ReplayRefused, match="stored change.*mm.outbox_id"):
        plan([as_entry(out)])


def test_a_record_without_source_headers_is_refused():
    entry = DlqEntry.build(DLQ, 0, 0, b"k", b"{}", [("ce_id", b"x")], None)
    with pytest.raises(ReplayRefused, match="no dlq.source.topic"):
        plan([entry])


def test_audit_details_hold_before_and_after_as_compact_offset_runs():
    entries = [
        as_entry(parked(SETTINGS, partition=2, offset=o, key=f"k{o}"), offset=o)
        for o in (0, 1, 2, 5)
    ]
    p = build_plan(SETTINGS, CATALOG, CLUSTER, DLQ, entries, Selection(reason="invalid_record"))
    sent = [Delivered(i.record.topic, 2, 100 + n) for n, i in enumerate(p.items)]
    d = p.audit_details(sent, "published")
    assert d["before"] == {"dlq_topic": DLQ, "offsets": {"2": [[0, 2], [5, 5]]}}
    assert d["after"] == {SETTINGS.topic("raw.onec.product"): {"2": [[100, 103]]}}
    assert d["selection"] == {"reason": "invalid_record"} and d["records"] == 4
    assert d["replay_id"] == p.replay_id and d["outcome"] == "published" and d["patch"] is None
    json.dumps(d)  # storable as jsonb


def test_offset_ranges_are_sorted_deduplicated_runs():
    assert offset_ranges([(0, 3), (0, 1), (0, 2), (1, 9), (0, 7), (0, 2)]) == {
        "0": [[1, 3], [7, 7]],
        "1": [[9, 9]],
    }
    assert offset_ranges([]) == {}
