"""Payload formats, pretty-printing, and RFC 6902 patches refused on anything but JSON."""

from __future__ import annotations

import json

import jsonpatch
import pytest

from stages.dlq.errors import PatchRefused
from stages.dlq.payload import apply_patch, describe, detect, load_patch, pretty

JSON_CT = [("content-type", b"application/json")]
AVRO = b"\x00\x00\x00\x00\x07" + b"\x02\x0c\xd0\x9c\xd0\xbe"  # wire format, schema id 7


def test_formats_are_detected_from_content_type_and_bytes():
    assert detect(b'{"a": 1}', JSON_CT) == "json"
    assert detect(b'{"a": 1}', []) == "json"
    assert detect(AVRO, []) == "avro"
    assert detect(b'{"a": 1}', [("content-type", b"application/vnd.kafka.avro.v2")]) == "avro"
    assert detect(b"\xff{not json", []) == "binary"
    assert detect("Мойка, not JSON".encode(), []) == "text"
    assert detect(None, []) == "empty" and detect(b"", []) == "empty"


def test_describe_and_pretty_show_json_indented_and_avro_with_its_schema_id():
    assert describe('{"Description": "Мойка"}'.encode(), JSON_CT)["json"] == {
        "Description": "Мойка"
    }
    assert pretty('{"Description": "Мойка"}'.encode(), JSON_CT) == '{\n  "Description": "Мойка"\n}'
    view = describe(AVRO, [])
    assert view["format"] == "avro" and view["schema_id"] == 7 and view["bytes"] == len(AVRO)
    assert "schema id 7" in pretty(AVRO, [])
    assert pretty(None, []) == "(no value: tombstone)"
    assert pretty(b"\xff" * 300, []).endswith("(44 more bytes)")


def test_a_patch_applies_to_json_and_keeps_non_ascii_text():
    patch = jsonpatch.JsonPatch(
        [
            {"op": "replace", "path": "/DataVersion", "value": "AAAAAQ=="},
            {"op": "add", "path": "/Description", "value": "Мойка"},
        ]
    )
    out = apply_patch(patch, b'{"Ref_Key": "x", "DataVersion": ""}', JSON_CT, where="d/0/1")
    assert json.loads(out) == {"Ref_Key": "x", "DataVersion": "AAAAAQ==", "Description": "Мойка"}
    assert "Мойка".encode() in out


@pytest.mark.parametrize(
    ("value", "headers", "why"),
    [
        (AVRO, [], "Avro"),
        (b"\xff{not json", [], "not valid JSON"),
        (b"plain text", [], "not valid JSON"),
        (None, [], "tombstone"),
    ],
)
def test_patches_on_non_json_payloads_are_refused_clearly(value, headers, why):
    patch = jsonpatch.JsonPatch([{"op": "add", "path": "/a", "value": 1}])
    with pytest.raises(PatchRefused, match=why) as info:
        apply_patch(patch, value, headers, where="t.dlq/2/7")
    assert "t.dlq/2/7" in str(info.value)


def test_a_patch_that_does_not_apply_names_the_record():
    patch = jsonpatch.JsonPatch([{"op": "test", "path": "/DataVersion", "value": "x"}])
    with pytest.raises(PatchRefused, match="does not apply to t.dlq/0/3"):
        apply_patch(patch, b'{"DataVersion": ""}', JSON_CT, where="t.dlq/0/3")
    patch = jsonpatch.JsonPatch([{"op": "remove", "path": "/missing"}])
    with pytest.raises(PatchRefused):
        apply_patch(patch, b"{}", JSON_CT, where="t.dlq/0/3")


@pytest.mark.parametrize(
    "content",
    [
        "not json",
        "{}",
        "[]",
        '[{"op": "jump", "path": "/a"}]',
        '[{"path": "/a"}]',
        '["add"]',
    ],
)
def test_invalid_patch_files_are_refused(tmp_path, content):
    path = tmp_path / "patch.json"
    path.write_text(content)
    with pytest.raises(PatchRefused, match="patch file"):
        load_patch(path)


def test_a_valid_patch_file_loads(tmp_path):
    path = tmp_path / "patch.json"
    path.write_text('[{"op": "add", "path": "/Description", "value": "x"}]')
    assert load_patch(path).patch == [{"op": "add", "path": "/Description", "value": "x"}]
    with pytest.raises(PatchRefused, match="cannot read"):
        load_patch(tmp_path / "missing.json")
