"""Bitrix24's view of products (raw.bitrix24.product) through the one entity sink, on the
test's broker and PostgreSQL: an echo of what egress wrote and a Bitrix24-side edit are told
apart, linked in the crosswalk and never passed on (1С owns every product field); what is
not ours gives no entity; what cannot be read is dead-lettered with its reason."""

from __future__ import annotations

import uuid

import pytest

from tests.stages.normalize.test_bitrix24_product import b24_product
from tests.stages.sink.harness import dlq, run, sink_settings, sql
from tests.support.stack import onec_product

ZERO = "00000000-0000-0000-0000-000000000000"


@pytest.fixture
def s(settings, registry_url):
    return sink_settings(settings, registry_url)


def test_echo_drift_and_foreign_products_are_told_apart(s):
    # Only what Bitrix24 shows (code, name, full name, active) is filled, so an exact echo is
    # recognizable as one: a stored field Bitrix24 does not show makes every echo a non-owner's.
    bare = {
        "Description": "Мойка",
        "Code": "m",
        "НаименованиеПолное": "",
        "Артикул": "",
        "ЕдиницаИзмерения_Key": ZERO,
        "Parent_Key": ZERO,
        "Услуга": False,
    }
    ours, edited = onec_product(**bare), onec_product(**bare)

    async def scenario(sinks):
        await sinks.entities.handle(
            [sinks.record("raw.onec.product", p, p["Ref_Key"]) for p in (ours, edited)]
        )
        return await sinks.entities.handle(
            [
                sinks.record(
                    "raw.bitrix24.product",
                    b24_product(
                        id="1", xmlId=ours["Ref_Key"], name="Мойка", code="m", previewText=""
                    ),
                    "product:1",
                ),
                sinks.record(
                    "raw.bitrix24.product",
                    b24_product(
                        id="2",
                        xmlId=edited["Ref_Key"],
                        name="Мойка (правка)",
                        code="m",
                        previewText="",
                    ),
                    "product:2",
                ),
                sinks.record(
                    "raw.bitrix24.product", b24_product(id="3", xmlId="чужой"), "product:3"
                ),
                sinks.record("raw.bitrix24.product", None, "product:1"),  # deleted in Bitrix24
                sinks.record(
                    "raw.bitrix24.product",
                    {"id": "4", "xmlId": str(uuid.uuid4()), "name": ""},
                    "product:4",
                ),
            ]
        )

    counts = run(s, scenario)
    assert (counts.total, counts.changed, counts.unchanged, counts.not_owner) == (2, 0, 1, 1)
    links = sql(
        s,
        "SELECT canonical_id, external_id FROM crosswalk "
        "WHERE system = 'bitrix24' AND entity = 'product' ORDER BY external_id",
    )
    assert links == [(ours["Ref_Key"], "1"), (edited["Ref_Key"], "2")]
    assert sql(s, "SELECT count(*) FROM outbox WHERE entity = 'product'") == [(2,)]  # 1С's two
    assert sql(s, "SELECT name, writers FROM product ORDER BY name") == [
        ("Мойка", ["onec"]),
        ("Мойка", ["onec"]),
    ]
    (entry,) = dlq(s, "dlq.normalize", expect=1)
    assert entry.key == b"product:4" and entry.code == "unnormalizable"
    assert "name" in entry.failure["error.message"]


def test_json_nested_too_deep_to_read_is_dead_lettered_not_raised(s):
    # json.loads raises RecursionError (not a ValueError) for it: it once stopped the agent.
    async def scenario(sinks):
        return await sinks.entities.handle(
            [sinks.record("raw.bitrix24.product", b"[" * 100_000, "product:1")]
        )

    assert run(s, scenario).total == 0
    (entry,) = dlq(s, "dlq.normalize", expect=1)
    assert entry.stage == "normalize" and entry.code == "unnormalizable"
