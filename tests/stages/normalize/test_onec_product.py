"""1С Номенклатура -> canonical Product, on the real 1С:Бухгалтерия 3.0 OData record."""

from __future__ import annotations

import json
from pathlib import Path
from uuid import UUID

import pytest
from pydantic import ValidationError

from mmstream.errors import InvalidRecord, PermanentError
from mmstream.models.product import Product
from stages.normalize.onec_product import (
    OneCNomenclature,
    parse,
    to_product,
    validation_details,
    validation_message,
)

FIXTURE = (
    Path(__file__).resolve().parents[3].parent
    / "shared"
    / "fixtures"
    / "onec_odata"
    / "bp30_Catalog_Nomenklatura.json"
)
ZERO = "00000000-0000-0000-0000-000000000000"


def fixture_record() -> dict:
    """The one real record of the fixture, unchanged (a fresh copy per call)."""
    return json.loads(FIXTURE.read_text(encoding="utf-8"))["value"][0]


def encode(record: object) -> bytes:
    return json.dumps(record, ensure_ascii=False).encode("utf-8")


def refused(record: object) -> str:
    """The InvalidRecord message parse() gives for ``record``."""
    with pytest.raises(InvalidRecord) as info:
        parse(encode(record))
    return str(info.value)


def errors_of(record: dict) -> ValidationError:
    with pytest.raises(ValidationError) as info:
        OneCNomenclature.model_validate(record)
    return info.value


# ------------------------------------------------------------------ the real record


def test_the_real_record_maps_to_the_canonical_product():
    product = parse(FIXTURE.read_bytes().split(b'"value": [', 1)[1].rsplit(b"]", 1)[0])
    assert product == Product(
        id=UUID("f02ce7b3-e3b3-11eb-b4ad-000c29b45b09"),
        source="onec",
        version="AAAAAQAAAAA=",
        code="00-00000001",
        name="Мойка",
        full_name="Мойка",
        article="",
        parent_id=None,  # Parent_Key is the all-zero GUID: "no group"
        unit_id=UUID("f40235d5-d84c-11ea-8133-0050569f62a1"),
        is_folder=False,
        is_service=False,
        deleted=False,
        external_ids={"onec": "f02ce7b3-e3b3-11eb-b4ad-000c29b45b09"},
    )


def test_parse_and_to_product_agree():
    record = fixture_record()
    assert parse(encode(record)) == to_product(OneCNomenclature.model_validate(record))


def test_extra_1c_fields_are_ignored():
    record = fixture_record()
    # The real record carries ~40 attributes the model does not declare, of every JSON type.
    assert "ВидНоменклатуры_Key" in record and record["ДополнительныеРеквизиты"] == []
    assert "ВидНоменклатуры@navigationLinkUrl" in record
    plain = parse(
        encode(
            {
                k: record[k]
                for k in (
                    "Ref_Key",
                    "DataVersion",
                    "Description",
                    "Code",
                    "Parent_Key",
                    "IsFolder",
                    "DeletionMark",
                    "Артикул",
                    "ЕдиницаИзмерения_Key",
                    "НаименованиеПолное",
                    "Услуга",
                )
            }
        )
    )
    assert parse(encode(record)) == plain
    record["КакоеТоНовоеПоле"] = {"nested": [1, 2, {"x": None}]}
    assert parse(encode(record)) == plain


def test_all_zero_guid_refs_become_none_and_real_ones_are_kept():
    record = fixture_record()
    record["ЕдиницаИзмерения_Key"] = ZERO
    product = parse(encode(record))
    assert product.parent_id is None and product.unit_id is None

    record["Parent_Key"] = "f40235be-d84c-11ea-8133-0050569f62a1"
    record["ЕдиницаИзмерения_Key"] = "f40235d5-d84c-11ea-8133-0050569f62a1"
    product = parse(encode(record))
    assert product.parent_id == UUID("f40235be-d84c-11ea-8133-0050569f62a1")
    assert product.unit_id == UUID("f40235d5-d84c-11ea-8133-0050569f62a1")


def test_absent_refs_are_none():
    record = fixture_record()
    del record["Parent_Key"], record["ЕдиницаИзмерения_Key"]
    product = parse(encode(record))
    assert product.parent_id is None and product.unit_id is None


def test_cyrillic_names_survive_unchanged():
    record = fixture_record()
    record["Description"] = "Смеситель «Ёлка» — хром, 35 мм"
    record["НаименованиеПолное"] = "Смеситель для кухни «Ёлка» однорычажный, хром (35 мм)"
    record["Артикул"] = "СМ-35/Х"
    product = parse(encode(record))
    assert product.name == "Смеситель «Ёлка» — хром, 35 мм"
    assert product.full_name == "Смеситель для кухни «Ёлка» однорычажный, хром (35 мм)"
    assert product.article == "СМ-35/Х"
    # The same with \\u escapes (ensure_ascii) gives the same product.
    assert parse(json.dumps(record).encode("ascii")) == product


def test_deletion_mark_makes_the_product_deleted():
    record = fixture_record()
    assert parse(encode(record)).deleted is False
    record["DeletionMark"] = True
    assert parse(encode(record)).deleted is True


def test_folder_and_service_flags_are_mapped():
    record = fixture_record()
    record["IsFolder"] = True
    record["Услуга"] = True
    product = parse(encode(record))
    assert product.is_folder is True and product.is_service is True


def test_omitted_optional_fields_take_defaults():
    record = {k: fixture_record()[k] for k in ("Ref_Key", "DataVersion", "Description")}
    product = parse(encode(record))
    assert (product.code, product.full_name, product.article) == ("", "", "")
    assert (product.is_folder, product.is_service, product.deleted) == (False, False, False)


def test_whitespace_around_text_fields_is_stripped():
    record = fixture_record()
    record["Code"] = "  00-00000001\t"
    record["Description"] = "\n Мойка  "
    record["НаименованиеПолное"] = "  Мойка кухонная "
    record["Артикул"] = " A-1 "
    product = parse(encode(record))
    assert (product.code, product.name, product.full_name, product.article) == (
        "00-00000001",
        "Мойка",
        "Мойка кухонная",
        "A-1",
    )
    # Inner whitespace is data, not padding.
    record["Description"] = "Мойка  двойная"
    assert parse(encode(record)).name == "Мойка  двойная"


def test_guid_spellings_give_the_same_canonical_id():
    record = fixture_record()
    expected = parse(encode(record)).id
    record["Ref_Key"] = record["Ref_Key"].upper()
    assert parse(encode(record)).id == expected


def test_the_version_is_kept_verbatim():
    record = fixture_record()
    record["DataVersion"] = "AAAAAgAAAAA="
    assert parse(encode(record)).version == "AAAAAgAAAAA="


# ------------------------------------------------------------------ refused input


@pytest.mark.parametrize("field", ["DeletionMark", "IsFolder", "Услуга"])
@pytest.mark.parametrize("value", ["true", "false", 1, 0, "Да", None])
def test_flags_must_be_real_json_booleans(field, value):
    record = fixture_record()
    record[field] = value
    message = refused(record)
    assert message.startswith(f"{field}: ")
    assert "boolean" in message


@pytest.mark.parametrize("field", ["Description", "Ref_Key", "DataVersion"])
def test_a_missing_required_field_is_named(field):
    record = fixture_record()
    del record[field]
    assert refused(record) == f"{field}: Field required"
    assert validation_details(errors_of(record)) == [{"field": field, "problem": "Field required"}]


@pytest.mark.parametrize("field", ["Description", "DataVersion"])
def test_an_empty_required_text_is_refused(field):
    record = fixture_record()
    record[field] = ""
    assert refused(record).startswith(f"{field}: String should have at least 1 character")


@pytest.mark.parametrize(
    "bad",
    [
        "not-a-guid",
        "f02ce7b3-e3b3-11eb-b4ad-000c29b45b0",
        "f02ce7b3-e3b3-11eb-b4ad-000c29b45b09-00",
        "",
        12345,
        None,
    ],
)
def test_a_bad_ref_key_is_refused(bad):
    record = fixture_record()
    record["Ref_Key"] = bad
    message = refused(record)
    assert message.startswith("Ref_Key: ")
    assert "UUID" in message or "uuid" in message


def test_a_bad_reference_field_is_named_by_its_1c_name():
    record = fixture_record()
    record["ЕдиницаИзмерения_Key"] = "guid'f40235d5'"
    assert refused(record).startswith("ЕдиницаИзмерения_Key: ")
    record = fixture_record()
    record["Parent_Key"] = "nope"
    assert refused(record).startswith("Parent_Key: ")


def test_too_long_values_are_refused():
    record = fixture_record()
    record["DataVersion"] = "A" * 65
    assert refused(record).startswith("DataVersion: String should have at most 64 characters")
    record = fixture_record()
    record["Code"] = "1" * 65
    assert refused(record).startswith("Code: ")


@pytest.mark.parametrize(
    "doc,kind",
    [
        ([], "list"),
        ([{"Ref_Key": ZERO}], "list"),
        ("text", "str"),
        (42, "int"),
        (None, "NoneType"),
        (True, "bool"),
    ],
)
def test_a_json_document_that_is_not_an_object_is_refused(doc, kind):
    assert refused(doc) == f"expected a JSON object, got {kind}"


def test_the_whole_odata_envelope_is_not_a_record():
    # The OData page itself is an object, but not a Номенклатура record.
    message = refused(json.loads(FIXTURE.read_text(encoding="utf-8")))
    for field in ("Ref_Key", "DataVersion", "Description"):
        assert f"{field}: Field required" in message


@pytest.mark.parametrize(
    "raw",
    [
        b"\x80{}",
        b'{"Ref_Key": "f02ce7b3-e3b3-11eb-b4ad-000c29b45b09", "Description": "\xcc\xee\xe9\xea\xe0"}',
    ],
)
def test_invalid_utf8_is_refused(raw):
    with pytest.raises(InvalidRecord) as info:
        parse(raw)
    assert str(info.value).startswith("not valid UTF-8 JSON: ")


def test_a_windows_1251_record_is_refused():
    # 1С exchange set to the wrong code page: valid JSON shape, wrong bytes.
    raw = json.dumps(fixture_record(), ensure_ascii=False).encode("cp1251")
    with pytest.raises(InvalidRecord, match="not valid UTF-8 JSON"):
        parse(raw)


@pytest.mark.parametrize("raw", [b"", b"   ", b"{", b'{"Ref_Key": }', b"{'a': 1}", b"NaN]"])
def test_malformed_json_is_refused(raw):
    with pytest.raises(InvalidRecord, match="^not valid UTF-8 JSON: "):
        parse(raw)


def test_bom_less_and_bom_prefixed_utf8_give_the_same_product():
    raw = encode(fixture_record())
    assert not raw.startswith(b"\xef\xbb\xbf")
    assert parse(b"\xef\xbb\xbf" + raw) == parse(raw)


def test_invalid_record_is_a_permanent_error_with_its_code():
    with pytest.raises(InvalidRecord) as info:
        parse(b"[]")
    assert isinstance(info.value, PermanentError)
    assert info.value.retriable is False and info.value.code == "invalid_record"


def test_validation_errors_are_chained_as_the_cause():
    record = fixture_record()
    record["Ref_Key"] = "nope"
    with pytest.raises(InvalidRecord) as info:
        parse(encode(record))
    assert isinstance(info.value.__cause__, ValidationError)


# ------------------------------------------------------------------ error summaries


def test_validation_message_lists_every_problem_in_order():
    record = fixture_record()
    del record["Description"]
    record["Ref_Key"] = "nope"
    record["Услуга"] = "false"
    message = validation_message(errors_of(record))
    parts = message.split("; ")
    assert [p.split(": ", 1)[0] for p in parts] == ["Ref_Key", "Description", "Услуга"]
    assert parts[1] == "Description: Field required"
    assert parts[2] == "Услуга: Input should be a valid boolean"
    assert "\n" not in message


def test_validation_details_give_field_and_problem_pairs():
    record = fixture_record()
    record["DataVersion"] = ""
    record["IsFolder"] = "true"
    details = validation_details(errors_of(record))
    assert details == [
        {"field": "DataVersion", "problem": "String should have at least 1 character"},
        {"field": "IsFolder", "problem": "Input should be a valid boolean"},
    ]
    # The same problems, one line: what the sink puts into the DLQ header.
    assert validation_message(errors_of(record)) == "; ".join(
        f"{d['field']}: {d['problem']}" for d in details
    )


def test_error_summaries_of_a_non_object_name_the_record():
    exc = errors_of([1, 2])  # type: ignore[arg-type]
    assert validation_details(exc)[0]["field"] == "(record)"
    assert validation_message(exc).startswith("(record): ")


def test_error_summaries_do_not_echo_input_values():
    # Error bodies and DLQ headers must not carry the submitted values back.
    record = fixture_record()
    record["Ref_Key"] = "secret-looking-value"
    assert "secret-looking-value" not in validation_message(errors_of(record))
    assert "secret-looking-value" not in json.dumps(validation_details(errors_of(record)))


# ------------------------------------------------------------------ bugs found by these tests, fixed


@pytest.mark.parametrize(
    "raw",
    [
        b'{"Ref_Key": "f02ce7b3-e3b3-11eb-b4ad-000c29b45b09", "DataVersion": "A", '
        b'"Description": "x", "\xd0\x9a\xd0\xbe\xd0\xbc": ' + b"1" * 5000 + b"}",
        b'{"Ref_Key": "f02ce7b3-e3b3-11eb-b4ad-000c29b45b09", "DataVersion": "A", '
        b'"Description": "x", "extra": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
    ],
    ids=["huge-integer", "deep-nesting"],
)
def test_pathological_json_is_an_invalid_record(raw):
    with pytest.raises(InvalidRecord):
        parse(raw)


def test_a_whitespace_only_description_is_refused():
    record = fixture_record()
    record["Description"] = "   \t "
    assert refused(record).startswith("Description: ")


def test_an_all_zero_ref_key_is_refused():
    record = fixture_record()
    record["Ref_Key"] = ZERO
    assert refused(record).startswith("Ref_Key: ")


def test_a_nul_character_is_refused():
    record = fixture_record()
    record["Description"] = "Мойка\u0000"
    assert refused(record).startswith("Description: ")
