"""Avro schema-resolution rules and compatibility levels (pure, no services)."""

from __future__ import annotations

import pytest

from mmstream.avro_compat import can_read, check


def record(*fields: dict, name: str = "Order", **extra) -> dict:
    return {"type": "record", "name": name, "fields": list(fields), **extra}


def field(name: str, type_, **extra) -> dict:
    return {"name": name, "type": type_, **extra}


ID = field("id", "string")


# ---------------------------------------------------------------- records


def test_added_field_with_default_is_readable():
    old = record(ID)
    new = record(ID, field("note", "string", default=""))
    assert can_read(new, old) == []


def test_added_field_with_null_default_counts_as_a_default():
    old = record(ID)
    new = record(ID, field("note", ["null", "string"], default=None))
    assert can_read(new, old) == []


def test_added_field_without_default_is_not_readable():
    old = record(ID)
    new = record(ID, field("note", "string"))
    reasons = can_read(new, old)
    assert len(reasons) == 1
    assert "/fields/note" in reasons[0] and "no default" in reasons[0]


def test_removed_field_is_ignored_by_the_reader():
    old = record(ID, field("note", "string"))
    new = record(ID)
    assert can_read(new, old) == []
    # ...but the old reader cannot read new data: it needs "note" and has no default.
    assert can_read(old, new) != []


def test_renamed_field_needs_an_alias():
    old = record(ID, field("qty", "int"))
    renamed = record(ID, field("quantity", "int"))
    aliased = record(ID, field("quantity", "int", aliases=["qty"]))
    assert can_read(renamed, old) != []
    assert can_read(aliased, old) == []


def test_field_type_change_is_reported_with_its_path():
    old = record(ID, field("qty", "string"))
    new = record(ID, field("qty", "int"))
    assert can_read(new, old) == ["/fields/qty: reader type int cannot read writer type string"]


def test_nested_record_field_added_without_default():
    address_v1 = {"type": "record", "name": "Address", "fields": [field("city", "string")]}
    address_v2 = {
        "type": "record",
        "name": "Address",
        "fields": [field("city", "string"), field("zip", "string")],
    }
    old = record(ID, field("address", address_v1))
    new = record(ID, field("address", address_v2))
    reasons = can_read(new, old)
    assert len(reasons) == 1 and reasons[0].startswith("/fields/address/fields/zip:")
    address_v2["fields"][1]["default"] = ""
    assert can_read(new, old) == []


def test_record_names_must_match_unless_aliased():
    old = record(ID, name="Order")
    assert can_read(record(ID, name="Purchase"), old) != []
    assert can_read(record(ID, name="Purchase", aliases=["Order"]), old) == []


def test_namespaces_do_not_matter_only_unqualified_names():
    old = record(ID, namespace="a.b")
    new = record(ID, namespace="c.d")
    assert can_read(new, old) == []


def test_named_type_references_are_resolved():
    money = {"type": "record", "name": "Money", "fields": [field("amount", "int")]}
    old = record(field("price", money), field("cost", "Money"))
    money_long = {"type": "record", "name": "Money", "fields": [field("amount", "long")]}
    new = record(field("price", money_long), field("cost", "Money"))
    assert can_read(new, old) == []
    # The reference in "cost" is resolved too: a long writer cannot feed an int reader.
    reasons = can_read(old, new)
    assert any(r.startswith("/fields/cost/fields/amount:") for r in reasons)


def test_recursive_schema_terminates():
    linked = record(
        field("value", "int"), field("next", ["null", "Node"], default=None), name="Node"
    )
    wider = record(
        field("value", "long"), field("next", ["null", "Node"], default=None), name="Node"
    )
    assert can_read(wider, linked) == []
    assert can_read(linked, wider) != []


# ---------------------------------------------------------------- primitives


@pytest.mark.parametrize(
    "writer, reader",
    [
        ("int", "long"),
        ("int", "float"),
        ("int", "double"),
        ("long", "float"),
        ("long", "double"),
        ("float", "double"),
        ("string", "bytes"),
        ("bytes", "string"),
        ("int", "int"),
    ],
)
def test_allowed_promotions(writer, reader):
    assert can_read(reader, writer) == []


@pytest.mark.parametrize(
    "writer, reader",
    [
        ("long", "int"),
        ("double", "float"),
        ("float", "long"),
        ("int", "string"),
        ("boolean", "int"),
        ("null", "string"),
    ],
)
def test_forbidden_promotions(writer, reader):
    assert can_read(reader, writer) != []


def test_promotion_inside_array_and_map():
    assert can_read({"type": "array", "items": "long"}, {"type": "array", "items": "int"}) == []
    assert can_read({"type": "map", "values": "int"}, {"type": "map", "values": "long"}) == [
        "/values: reader type int cannot read writer type long"
    ]


def test_logical_type_wrapper_reads_as_its_base_type():
    ts = {"type": "long", "logicalType": "timestamp-millis"}
    assert can_read(ts, "long") == []
    assert can_read("int", ts) != []


def test_fixed_size_must_match():
    f4 = {"type": "fixed", "name": "Hash", "size": 4}
    f8 = {"type": "fixed", "name": "Hash", "size": 8}
    assert can_read(f4, dict(f4)) == []
    assert "size" in can_read(f8, f4)[0]


# ---------------------------------------------------------------- enums


def enum(*symbols: str, **extra) -> dict:
    return {"type": "enum", "name": "Status", "symbols": list(symbols), **extra}


def test_enum_symbol_added_by_the_reader_is_fine():
    assert can_read(enum("NEW", "DONE", "CANCELLED"), enum("NEW", "DONE")) == []


def test_enum_symbol_unknown_to_the_reader_is_not():
    reasons = can_read(enum("NEW", "DONE"), enum("NEW", "DONE", "CANCELLED"))
    assert len(reasons) == 1 and "CANCELLED" in reasons[0]


def test_enum_default_absorbs_unknown_symbols():
    reader = enum("UNKNOWN", "NEW", "DONE", default="UNKNOWN")
    assert can_read(reader, enum("NEW", "DONE", "CANCELLED")) == []


# ---------------------------------------------------------------- unions


def test_reader_union_containing_the_writer_type():
    assert can_read(["null", "string"], "string") == []
    # A branch reached by promotion counts too.
    assert can_read(["null", "long"], "int") == []
    assert can_read(["null", "boolean"], "string") != []


def test_writer_union_needs_every_branch_readable():
    assert can_read("string", ["null", "string"]) != []
    assert can_read(["null", "string", "int"], ["null", "string"]) == []
    reasons = can_read(["null", "string"], ["null", "string", "int"])
    assert len(reasons) == 1 and "int" in reasons[0]


def test_optional_field_widening_and_narrowing():
    required = record(ID, field("note", "string"))
    optional = record(ID, field("note", ["null", "string"], default=None))
    assert can_read(optional, required) == []
    assert can_read(required, optional) != []


def test_union_of_records_matched_by_name():
    a = {"type": "record", "name": "A", "fields": [field("x", "int")]}
    b = {"type": "record", "name": "B", "fields": [field("y", "int")]}
    a_long = {"type": "record", "name": "A", "fields": [field("x", "long")]}
    assert can_read(["null", a_long, b], ["null", a]) == []
    assert can_read(["null", b], ["null", a]) != []


# ---------------------------------------------------------------- levels


V1 = record(ID)
V2_WITH_DEFAULT = record(ID, field("note", "string", default=""))
V2_NO_DEFAULT = record(ID, field("note", "string"))


def test_none_allows_anything():
    assert check("NONE", record(field("other", "int")), [V1]) == []


def test_no_existing_schema_is_always_compatible():
    assert check("FULL_TRANSITIVE", V2_NO_DEFAULT, []) == []


def test_backward_checks_new_reads_old():
    assert check("BACKWARD", V2_WITH_DEFAULT, [V1]) == []
    assert check("BACKWARD", V2_NO_DEFAULT, [V1]) != []
    # Removing a field without default: new reads old fine.
    assert check("BACKWARD", V1, [V2_NO_DEFAULT]) == []


def test_forward_checks_old_reads_new():
    # Adding a field without default: the old reader simply ignores it.
    assert check("FORWARD", V2_NO_DEFAULT, [V1]) == []
    # Removing a field the old reader requires is not forward compatible.
    assert check("FORWARD", V1, [V2_NO_DEFAULT]) != []
    assert check("FORWARD", V1, [V2_WITH_DEFAULT]) == []


def test_full_checks_both_directions():
    assert check("FULL", V2_WITH_DEFAULT, [V1]) == []
    assert check("FULL", V2_NO_DEFAULT, [V1]) != []  # fails backward
    assert check("FULL", V1, [V2_NO_DEFAULT]) != []  # fails forward


def test_backward_transitive_checks_every_version():
    v2 = record(ID, field("note", "string", default=""))
    v3 = record(ID, field("note", "string"))  # reads v2 data, not v1 data
    assert check("BACKWARD", v3, [V1, v2]) == []
    reasons = check("BACKWARD_TRANSITIVE", v3, [V1, v2], labels=["version 1", "version 2"])
    assert len(reasons) == 1 and reasons[0].startswith("new schema cannot read version 1:")


def test_forward_transitive_checks_every_version():
    v1 = record(ID, field("qty", "int"))
    v2 = record(ID, field("qty", "int", default=0))
    v3 = record(ID)  # v2 readers default qty; v1 readers cannot
    assert check("FORWARD", v3, [v1, v2]) == []
    assert check("FORWARD_TRANSITIVE", v3, [v1, v2]) != []


def test_full_transitive_checks_every_version_both_ways():
    v1 = record(ID, field("qty", "int"))
    v2 = record(ID, field("qty", "int", default=0))
    v3 = record(ID, field("qty", "int", default=0), field("note", "string", default=""))
    assert check("FULL_TRANSITIVE", v3, [v1, v2]) == []
    assert check("FULL_TRANSITIVE", record(ID), [v1, v2]) != []
    assert check("FULL", record(ID), [v1, v2]) == []


def test_level_is_case_insensitive_and_validated():
    assert check("backward", V2_NO_DEFAULT, [V1]) != []
    with pytest.raises(ValueError):
        check("SIDEWAYS", V1, [V1])
    with pytest.raises(ValueError):
        check("BACKWARD", V1, [V1], labels=[])
