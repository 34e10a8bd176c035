"""File names, archives and credentials of the exchange (pure helpers)."""

from __future__ import annotations

import base64
import io

import pytest
from pydantic import SecretStr

from connectors.commerceml import auth, files
from connectors.commerceml.errors import BadCredentials, BadRequest, InvalidDocument
from mmstream.settings import CommerceMLSettings
from tests.connectors.commerceml import samples


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("import.xml", "import.xml"),
        ("/import_files/ab/abc.jpg", "import_files/ab/abc.jpg"),
        ("import_files\\ab\\abc.jpg", "import_files/ab/abc.jpg"),
    ],
)
def test_safe_names(raw, expected):
    assert files.safe_name(raw) == expected


@pytest.mark.parametrize(
    "raw", [None, "", "../etc/passwd", "a/../../b", "a//b", "x\x00.xml", "a" * 600]
)
def test_unsafe_names(raw):
    with pytest.raises(BadRequest):
        files.safe_name(raw)


def test_what_is_kept():
    assert files.worth_keeping("import.xml", b"x", False)
    assert files.worth_keeping("v8_1A2B.tmp", b"PK\x03\x04rest", False)
    assert files.worth_keeping("orders", b"\xef\xbb\xbf<?xml", False)
    assert not files.worth_keeping("import_files/ab/abc.jpg", b"\xff\xd8\xff", False)
    assert files.worth_keeping("import_files/ab/abc.jpg", b"\xff\xd8\xff", True)


def test_extract_by_path_or_base_name():
    archive = io.BytesIO(
        samples.zipped(
            {"import.xml": b"<a/>", "sub/offers.xml": b"<b/>", "import_files/x.jpg": b"\xff"}
        )
    )
    for name, expected in (
        ("import.xml", b"<a/>"),
        ("offers.xml", b"<b/>"),
        ("sub/offers.xml", b"<b/>"),
    ):
        dest = io.BytesIO()
        assert files.extract(archive, name, dest)
        assert dest.read() == expected
    assert not files.extract(archive, "prices.xml", io.BytesIO())
    assert files.xml_members(archive) == ["import.xml", "sub/offers.xml"]


def test_cp866_member_names():
    # What a Windows archiver writes without the UTF-8 flag: cp866 bytes in the headers
    # (zipfile itself would write UTF-8, so the name is patched in afterwards).
    name = "заказы.xml".encode("cp866")
    placeholder = b"z" * (len(name) - 4) + b".xml"
    data = samples.zipped({placeholder.decode(): b"<a/>"}).replace(placeholder, name)
    assert files.xml_members(io.BytesIO(data)) == ["заказы.xml"]
    dest = io.BytesIO()
    assert files.extract(io.BytesIO(data), "заказы.xml", dest) and dest.read() == b"<a/>"


def test_broken_archive():
    with pytest.raises(InvalidDocument):
        files.extract(
            io.BytesIO(samples.zipped({"import.xml": b"<a/>"})[:30]), "import.xml", io.BytesIO()
        )


def _basic(user: str, password: str, encoding: str = "utf-8") -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode(encoding)).decode()


CFG = CommerceMLSettings(username="обмен", password=SecretStr("s3cret"))


def test_basic_credentials():
    assert auth.check_basic(_basic("обмен", "s3cret"), CFG) == "обмен"
    assert auth.check_basic(_basic("обмен", "s3cret", "cp1251"), CFG) == "обмен"


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "Bearer x",
        "Basic !!!",
        _basic("обмен", "wrong"),
        _basic("site", "s3cret"),
        "Basic " + base64.b64encode(b"nocolon").decode(),
    ],
)
def test_bad_credentials(header):
    with pytest.raises(BadCredentials):
        auth.check_basic(header, CFG)


def test_no_password_configured_means_disabled():
    with pytest.raises(BadCredentials, match="disabled"):
        auth.check_basic(
            _basic("site", ""), CommerceMLSettings(username="site", password=SecretStr(""))
        )


def test_cookie_header():
    assert auth.cookie_from(f"a=1; {auth.COOKIE_NAME}=abc; b=2") == "abc"
    assert auth.cookie_from("a=1") is None and auth.cookie_from(None) is None
    assert auth.cookie_hash("abc") == auth.cookie_hash("abc") != auth.cookie_hash("abd")
