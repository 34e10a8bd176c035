"""The streaming reader on the real УТ export: sections, classifier, encodings, namespace,
and the documents it refuses."""

from __future__ import annotations

import io

import pytest

from connectors.commerceml.document import check, records
from connectors.commerceml.errors import DocumentRejected, IncompleteDocument, InvalidDocument
from connectors.commerceml.parser import Context, entries
from tests.connectors.commerceml import samples


def _values(data: bytes) -> list[bytes]:
    return [r.value() for r in records(io.BytesIO(data))]


def test_the_real_import_xml_holds_an_offer_package_without_prices():
    """Detected by the root's children, not the file name: 19 product-like offers, no
    price and no stock, so no record — and the summary says so."""
    ctx = Context()
    found = list(entries(io.BytesIO(samples.IMPORT.read_bytes()), ctx))
    assert ctx.sections == ["Классификатор", "ПакетПредложений"]
    # Its declared price type is published (a pure exchange with a site declares it nowhere else).
    assert [e.kind for e in found] == ["price_type"] + ["offer"] * 19
    summary = check(io.BytesIO(samples.IMPORT.read_bytes()))
    assert summary.records == {"price_type": 1} and summary.empty_offers == 19


def test_classifier_groups_properties_and_price_types():
    ctx = Context()
    for _ in entries(io.BytesIO(samples.IMPORT.read_bytes()), ctx):
        pass
    assert ctx.groups["osystem"] == "Операционные системы"
    assert ctx.groups["fec44261-26d3-11e6-9472-00155d020201"] == "РОСА"
    assert ctx.group_parents["fec44261-26d3-11e6-9472-00155d020201"] == "osystem"
    assert len(ctx.properties) == 7
    assert ctx.properties["KEY_FUNCTIONS_1"].values["DOMEN"] == "Поддержка домена"
    assert ctx.price_types["Отпускная цена"].currency == "руб"


def test_real_offers_give_one_price_per_priced_offer():
    summary = check(io.BytesIO(samples.OFFERS.read_bytes()))
    assert summary.entries == {"offer": 103, "price_type": 1}
    assert summary.records == {"price": 84, "price_type": 1}
    assert summary.empty_offers == 19


def test_real_orders():
    summary = check(io.BytesIO(samples.ORDERS.read_bytes()))
    assert summary.sections == ["Документ"] * 3
    assert summary.records == {"customer_order": 3}


@pytest.mark.parametrize("fixture", [samples.IMPORT, samples.OFFERS, samples.ORDERS])
def test_windows_1251_reads_the_same(fixture):
    data = fixture.read_bytes()
    cp1251 = samples.as_windows_1251(data)
    assert b"windows-1251" in cp1251[:60] and "Ид".encode("cp1251") in cp1251
    assert _values(cp1251) == _values(data)


def test_bom_is_optional():
    data = samples.OFFERS.read_bytes()
    assert data.startswith(b"\xef\xbb\xbf")
    assert _values(data[3:]) == _values(data)


def test_namespace_is_optional():
    data = samples.OFFERS.read_bytes()
    namespaced = samples.with_namespace(data)
    assert b"urn:1C.ru:commerceml_2" in namespaced
    assert _values(namespaced) == _values(data)
    assert len(_values(namespaced)) == 84 + 1  # the prices and their declared price type


def test_a_truncated_file_is_incomplete():
    data = samples.OFFERS.read_bytes()
    with pytest.raises(IncompleteDocument):
        check(io.BytesIO(data[: len(data) // 2]))


@pytest.mark.parametrize(
    "data",
    [
        b"<?xml version='1.0'?><catalog><item/></catalog>",
        "<?xml version='1.0'?><КоммерческаяИнформация><a></b></КоммерческаяИнформация>".encode(),
        b"not xml at all",
        b"PK\x03\x04 a zip is not a document",
    ],
)
def test_not_a_commerceml_document(data):
    with pytest.raises(InvalidDocument) as caught:
        check(io.BytesIO(data))
    assert not isinstance(caught.value, IncompleteDocument)


def test_an_invalid_entry_rejects_the_whole_document():
    original = samples.OFFERS.read_bytes()
    broken = (
        original.decode("utf-8-sig")
        .replace("<ЦенаЗаЕдиницу>2042.66</ЦенаЗаЕдиницу>", "<ЦенаЗаЕдиницу>дорого</ЦенаЗаЕдиницу>")
        .encode()
    )
    assert broken != original
    with pytest.raises(DocumentRejected) as caught:
        check(io.BytesIO(broken))
    assert "'дорого' is not a number" in str(caught.value)
    assert (
        caught.value.problems
        and "235ccc6d-ab81-11e4-944a-00155d020201#" in caught.value.problems[0]
    )


def test_an_empty_orders_document_is_valid():
    """1С may send an orders file with no Документ: nothing to publish, not an error."""
    empty = "<?xml version='1.0' encoding='UTF-8'?><КоммерческаяИнформация ВерсияСхемы='2.05'/>"
    summary = check(io.BytesIO(empty.encode()))
    assert summary.entries == {} and summary.sections == []
