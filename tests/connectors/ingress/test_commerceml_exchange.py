"""The CommerceML exchange as an unmodified 1С conducts it, against the real bridge, broker
and PostgreSQL: checkauth → init → file (chunked) → import, and the sale direction.
Every check reads the raw topics back.

Every test runs at the default log level (INFO) with records really made and formatted as
the bridge's JSON handler does: a log call that breaks only when enabled (a reserved
``extra`` key made every chunk and import answer 500) fails here."""

from __future__ import annotations

import base64
import io
import json
import logging
import tempfile
import warnings
import xml.etree.ElementTree as ET
import zipfile
from collections import Counter
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr
from pythonjsonlogger.json import JsonFormatter

from connectors.commerceml import document
from connectors.commerceml.auth import COOKIE_NAME
from connectors.ingress.app import create_app
from devstack.stack.broker import EmbeddedBroker
from mmstream.envelope import decode_headers
from mmstream.kafka.admin import apply
from mmstream.serve import free_port
from mmstream.topics import load_catalog
from tests.connectors.commerceml import samples
from tests.support.topics import count_records

LIMIT = 64 * 1024  # file_limit told to 1С: the real offers.xml (267 KB) needs 5 chunks
PASSWORD = SecretStr("an-exchange-password-for-these-tests")


@pytest.fixture(autouse=True)
def at_default_log_level(caplog):
    """INFO, as the bridge runs; afterwards every record must format as the JSON handler
    of mmstream.log formats it."""
    caplog.set_level(logging.INFO)
    yield
    formatter = JsonFormatter("%(asctime)s %(levelname)s %(name)s %(message)s")
    for record in caplog.records:
        formatter.format(record)


class OneC:
    """Speaks the protocol the way 1С does: Basic at checkauth, then the cookie it got."""

    def __init__(
        self, client: TestClient, kind: str = "catalog", url: str = "/1c_exchange"
    ) -> None:
        self.client, self.kind, self.url = client, kind, url
        self.cookie: str | None = None

    def call(self, mode: str, content: bytes | None = None, **params):
        headers = {"Cookie": self.cookie} if self.cookie else {}
        query = {"type": self.kind, "mode": mode, **params}
        if content is None:
            return self.client.get(self.url, params=query, headers=headers)
        return self.client.post(
            self.url,
            params=query,
            content=content,
            headers={**headers, "Content-Type": "application/octet-stream"},
        )

    def checkauth(self, user: str, password: str):
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        resp = self.client.get(
            self.url,
            params={"type": self.kind, "mode": "checkauth"},
            headers={"Authorization": f"Basic {token}"},
        )
        lines = resp.text.split("\n")
        if resp.status_code == 200 and lines[0] == "success":
            self.cookie = f"{lines[1]}={lines[2]}"
        return resp

    def login(self, settings) -> OneC:
        resp = self.checkauth(
            settings.commerceml.username, settings.commerceml.password.get_secret_value()
        )
        assert resp.status_code == 200 and resp.text.split("\n")[:2] == ["success", COOKIE_NAME], (
            resp.text
        )
        return self

    def upload(self, filename: str, data: bytes, chunk: int = LIMIT) -> None:
        for piece in samples.chunks(data, chunk):
            resp = self.call("file", piece, filename=filename)
            assert (resp.status_code, resp.text) == (200, "success")

    def import_(self, filename: str):
        return self.call("import", filename=filename)


def _settings(base, tmp_path, **commerceml):
    cml = base.commerceml.model_copy(
        update={
            "file_limit_bytes": LIMIT,
            "use_zip": False,
            "work_dir": tmp_path,
            "password": PASSWORD,
            **commerceml,
        }
    )
    return base.model_copy(update={"commerceml": cml})


@contextmanager
def _bridge(settings):
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        yield client


@pytest.fixture
def cml_settings(bridge_settings, tmp_path):
    return _settings(bridge_settings, tmp_path)


@pytest.fixture
def onec(cml_settings):
    with _bridge(cml_settings) as client:
        yield OneC(client).login(cml_settings)


def _failure(resp, status: int, words: str, code: str | None = None) -> None:
    assert resp.status_code == status, resp.text
    lines = resp.text.split("\n")
    assert lines[0] == "failure" and words in lines[1], resp.text
    assert lines[2] == f"request_id={resp.headers['x-request-id']}"
    if code is not None:
        assert resp.headers["x-error-code"] == code


def _logged(caplog, message: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.getMessage() == message]


def _read(settings, topic: str, expect: int):
    return count_records(settings, topic, expect_at_least=expect, quiet_s=0)


def _keys(records) -> Counter:
    return Counter(r.key().decode() for r in records)


def test_catalog_exchange_chunked(onec, cml_settings, caplog):
    """Plain files (zip=no) bigger than file_limit, sent in chunks, imported: every product,
    price and stock lands once on its raw topic, keyed by the canonical source id. At INFO:
    every chunk and import is logged (it used to answer 500 there)."""
    init = onec.call("init")
    assert (init.status_code, init.text) == (200, f"zip=no\nfile_limit={LIMIT}")
    catalog, offers = samples.catalog(), samples.offers_with_stock()
    assert len(catalog) > 2 * LIMIT and len(offers) > 2 * LIMIT
    onec.upload("import.xml", catalog)
    onec.upload("offers.xml", offers)
    assert onec.import_("import.xml").text == "success"
    assert onec.import_("offers.xml").text == "success"
    assert onec.call("complete").text == "success"
    chunks = -(-len(catalog) // LIMIT) + -(-len(offers) // LIMIT)
    assert len(_logged(caplog, "commerceml chunk stored")) == chunks
    imported = _logged(caplog, "commerceml file imported")
    assert [r.file for r in imported] == ["import.xml", "offers.xml"]

    ids, priced = samples.offer_ids(), samples.priced_offer_ids()
    products = _read(cml_settings, "raw.onec.product", len(ids))
    assert _keys(products) == Counter(i.split("#")[0] for i in ids)
    payloads = [json.loads(r.value()) for r in products]
    assert sorted(p["cml_id"] for p in payloads) == sorted(ids)
    assert sorted(p["cml_id"] for p in payloads if p["deleted"]) == sorted(
        samples.deleted_offer_ids()
    )
    assert all(p["_source"] == "commerceml" for p in payloads)

    prices = _read(cml_settings, "raw.onec.price", len(priced))
    assert _keys(prices) == Counter(f"{i}:{samples.PRICE_TYPE}" for i in priced)
    stock = _read(cml_settings, "raw.onec.stock", 2 * len(priced))
    assert _keys(stock) == Counter([*priced, *(f"{i}:{samples.WAREHOUSE}" for i in priced)])
    headers = decode_headers(prices[0].headers())
    assert headers["ce_type"] == "ru.mastermobile.commerceml.price.v1"
    assert headers["ce_source"] == f"/commerceml/{cml_settings.commerceml.username}"


def test_catalog_exchange_zipped(bridge_settings, tmp_path):
    """zip=yes: one archive (with a picture inside), uploaded in chunks; 1С then imports the
    XML files by name and the bridge finds them inside the archive."""
    settings = _settings(bridge_settings, tmp_path, use_zip=True)
    archive = samples.zipped(
        {
            "import.xml": samples.catalog(),
            "offers.xml": samples.OFFERS.read_bytes(),
            "import_files/23/235ccc6d.jpg": b"\xff\xd8\xff\xe0 not really a jpeg",
        }
    )
    with _bridge(settings) as client:
        onec = OneC(client, url="/1c_exchange.php").login(settings)
        assert onec.call("init").text == f"zip=yes\nfile_limit={LIMIT}"
        onec.upload("import.zip", archive, chunk=LIMIT // 3)
        assert onec.import_("import.xml").text == "success"
        assert onec.import_("offers.xml").text == "success"
    assert _keys(_read(settings, "raw.onec.price", 84)) == Counter(
        f"{i}:{samples.PRICE_TYPE}" for i in samples.priced_offer_ids()
    )
    assert len(_read(settings, "raw.onec.product", 103)) == 103


def test_windows_1251_file(onec, cml_settings):
    onec.call("init")
    onec.upload("offers.xml", samples.as_windows_1251(samples.OFFERS.read_bytes()))
    assert onec.import_("offers.xml").text == "success"
    prices = _read(cml_settings, "raw.onec.price", 84)
    assert _keys(prices) == Counter(f"{i}:{samples.PRICE_TYPE}" for i in samples.priced_offer_ids())
    first = json.loads(prices[0].value())
    assert (first["price_type_name"], first["currency"]) == ("Отпускная цена", "руб")


def test_reimport_repeats_the_same_event_ids(onec, cml_settings):
    """Importing the same file twice publishes every record twice with the same ce_id and
    version: the sink's (entity, id, version) dedupe drops the second copy."""
    onec.call("init")
    onec.upload("offers.xml", samples.OFFERS.read_bytes())
    assert onec.import_("offers.xml").text == "success"
    assert onec.import_("offers.xml").text == "success"
    prices = _read(cml_settings, "raw.onec.price", 168)
    assert len(prices) == 168
    ids: dict[str, set[str]] = {}
    for rec in prices:
        ids.setdefault(rec.key().decode(), set()).add(decode_headers(rec.headers())["ce_id"])
    assert len(ids) == 84 and all(len(v) == 1 for v in ids.values())


def test_refusals_publish_nothing(cml_settings):
    """Wrong password, no or forged cookie, bad mode, oversized request, unknown file, broken
    and invalid documents: each a failure with the right status, none publishes; a valid
    import afterwards is the only thing on the topics."""
    with _bridge(cml_settings) as client:
        intruder = OneC(client)
        resp = intruder.checkauth(cml_settings.commerceml.username, "wrong")
        _failure(resp, 401, "wrong user name or password")
        assert resp.headers["www-authenticate"].startswith("Basic")
        _failure(intruder.call("init"), 401, "no session cookie")
        intruder.cookie = f"{COOKIE_NAME}=forged"
        _failure(intruder.call("file", b"<x/>", filename="import.xml"), 401, "unknown or expired")

        onec = OneC(client).login(cml_settings)
        onec.call("init")
        _failure(onec.call("explode"), 400, "unknown mode")
        _failure(OneC(client, kind="pictures").call("checkauth"), 400, "unknown type")
        _failure(onec.call("import"), 400, "filename parameter is missing")
        _failure(
            onec.call("file", b"x", filename="../../etc/passwd"), 400, "not a plain relative path"
        )
        whole = samples.OFFERS.read_bytes()
        _failure(onec.call("file", whole, filename="offers.xml"), 413, f"file_limit={LIMIT}")
        _failure(onec.import_("offers.xml"), 404, "was not uploaded")
        _failure(onec.import_("never.xml"), 404, "was not uploaded")
        onec.upload("broken.xml", whole[: len(whole) // 2])
        _failure(onec.import_("broken.xml"), 400, "incomplete")
        onec.upload(
            "bad.xml",
            whole.decode("utf-8-sig")
            .replace("<ЦенаЗаЕдиницу>2042.66", "<ЦенаЗаЕдиницу>дорого")
            .encode(),
        )
        _failure(onec.import_("bad.xml"), 422, "'дорого' is not a number")
        onec.upload("offers.xml", whole)  # the same file, chunked: accepted
        assert onec.import_("offers.xml").text == "success"
    prices = _read(cml_settings, "raw.onec.price", 84)
    assert _keys(prices) == Counter(f"{i}:{samples.PRICE_TYPE}" for i in samples.priced_offer_ids())
    assert _read(cml_settings, "raw.onec.product", 0) == []


def test_expired_session(onec, cml_settings):
    with psycopg.connect(
        cml_settings.database_url.get_secret_value().replace("+psycopg", "")
    ) as conn:
        conn.execute("UPDATE commerceml_session SET expires_at = now() - interval '1 second'")
    _failure(onec.call("init"), 401, "unknown or expired")


def _query(onec: OneC) -> ET.Element:
    resp = onec.call("query")
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("application/xml")
    root = ET.fromstring(resp.content)
    assert root.tag == "КоммерческаяИнформация" and root.get("ВерсияСхемы")
    return root


def test_sale_query_and_success(cml_settings):
    url = cml_settings.database_url.get_secret_value().replace("+psycopg", "")
    with _bridge(cml_settings) as client:
        onec = OneC(client, kind="sale").login(cml_settings)
        assert onec.call("init").text == f"zip=no\nfile_limit={LIMIT}"
        assert list(_query(onec)) == []
        with psycopg.connect(url) as conn:
            for doc_id in ("A-1", "A-2"):
                conn.execute(
                    "INSERT INTO commerceml_order_export (document_id, document) VALUES (%s, %s)",
                    (doc_id, f"<Документ><Ид>{doc_id}</Ид><Номер>{doc_id}</Номер></Документ>"),
                )
            conn.execute(
                "INSERT INTO commerceml_order_export (document_id, document) "
                "VALUES ('broken', '<Документ><Ид>')"
            )
        assert [d.findtext("Ид") for d in _query(onec)] == ["A-1", "A-2"]
        assert onec.call("success").text == "success"
        assert list(_query(onec)) == []
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT document_id, acknowledged_at IS NOT NULL FROM commerceml_order_export "
            "ORDER BY id"
        ).fetchall()
    assert rows == [("A-1", True), ("A-2", True), ("broken", False)]


def test_sale_file_in_chunks_publishes_the_orders(cml_settings):
    orders = samples.ORDERS.read_bytes()
    with _bridge(cml_settings) as client:
        onec = OneC(client, kind="sale").login(cml_settings)
        onec.call("init")
        half = len(orders) // 2
        first = onec.call("file", orders[:half], filename="orders.xml")
        assert (first.status_code, first.text) == (200, "success")
        assert _read(cml_settings, "raw.onec.customer_order", 0) == []
        second = onec.call("file", orders[half:], filename="orders.xml")
        assert (second.status_code, second.text) == (200, "success")
        # The next file under the same name starts over (it is not appended).
        again = onec.call("file", samples.zipped({"orders.xml": orders}), filename="orders.xml")
        assert (again.status_code, again.text) == (200, "success")
    records = _read(cml_settings, "raw.onec.customer_order", 6)
    assert _keys(records) == Counter({"36": 2, "92": 2, "93": 2})
    assert json.loads(records[0].value())["_source"] == "commerceml"


def test_broker_down_is_a_503_failure_that_1c_retries(settings, tmp_path):
    broker = EmbeddedBroker(free_port(), log_path=tmp_path / "broker.log").start()
    try:
        kafka = settings.kafka.model_copy(
            update={"bootstrap_servers": broker.bootstrap, "produce_timeout_s": 2.0}
        )
        down = _settings(settings.model_copy(update={"kafka": kafka}), tmp_path)
        apply(down, load_catalog(down.topics_file))
        with _bridge(down) as client:
            onec = OneC(client).login(down)
            onec.call("init")
            onec.upload("offers.xml", samples.OFFERS.read_bytes())
            broker.stop()
            resp = onec.import_("offers.xml")
            _failure(resp, 503, "Kafka did not acknowledge")
            assert int(resp.headers["retry-after"]) > 0
    finally:
        broker.stop()


def test_without_a_database_the_exchange_says_so(cml_settings):
    """Sessions and files live in PostgreSQL: a bridge without one answers 503, not 500."""
    with _bridge(cml_settings.model_copy(update={"database_url": None})) as client:
        resp = OneC(client).checkauth(
            cml_settings.commerceml.username, cml_settings.commerceml.password.get_secret_value()
        )
    _failure(resp, 503, "needs PostgreSQL")
    assert int(resp.headers["retry-after"]) > 0


def test_an_archive_is_checked_whole_before_anything_is_published(onec, cml_settings):
    """Importing an archive by its own name imports every XML inside; one invalid member
    refuses the archive and none of the valid members is published."""
    good = samples.OFFERS.read_bytes()
    bad = good.decode("utf-8-sig").replace("<ЦенаЗаЕдиницу>2042.66", "<ЦенаЗаЕдиницу>?").encode()
    onec.call("init")
    onec.upload("bundle.zip", samples.zipped({"offers.xml": good, "prices.xml": bad}))
    _failure(onec.import_("bundle.zip"), 422, "is not a number")
    onec.upload(
        "other.zip", samples.zipped({"offers.xml": good, "orders.xml": samples.ORDERS.read_bytes()})
    )
    assert onec.import_("other.zip").text == "success"
    assert len(_read(cml_settings, "raw.onec.price", 84)) == 84
    assert _keys(_read(cml_settings, "raw.onec.customer_order", 3)) == Counter(["36", "92", "93"])


# ------------------------------------------------------------------ off, limits and abuse


def _db(settings):
    return psycopg.connect(settings.database_url.get_secret_value().replace("+psycopg", ""))


def test_without_a_password_the_exchange_is_off(cml_settings, caplog):
    """No default password: unset, the endpoint answers 404 commerceml_disabled to every
    step, and the bridge says so when it starts."""
    off = _settings(cml_settings, cml_settings.commerceml.work_dir, password=None)
    with _bridge(off) as client:
        onec = OneC(client)
        _failure(
            onec.checkauth("site", "dev-only-commerceml"),
            404,
            "exchange is off",
            "commerceml_disabled",
        )
        _failure(onec.call("init"), 404, "exchange is off", "commerceml_disabled")
    assert [
        r.levelno
        for r in _logged(
            caplog,
            "commerceml exchange is off: no password is set "
            "(MM_COMMERCEML__PASSWORD); /1c_exchange answers 404 "
            "commerceml_disabled",
        )
    ] == [logging.WARNING]


def test_the_setting_has_no_default_password():
    from mmstream.settings import CommerceMLSettings

    assert CommerceMLSettings().password is None


def test_database_errors_do_not_reach_the_client(cml_settings, caplog):
    """The driver's message (host, database, user) stays in the log; 1С — maybe not even
    authenticated yet — gets a generic 503 with the request id."""
    url = cml_settings.database_url.get_secret_value()
    missing = url.rsplit("/", 1)[0] + "/mm_no_such_database_h3a"
    broken = cml_settings.model_copy(update={"database_url": SecretStr(missing)})
    with _bridge(broken) as client:
        resp = OneC(client).checkauth(broken.commerceml.username, PASSWORD.get_secret_value())
    _failure(resp, 503, "database is unavailable", "database_unavailable")
    assert "mm_no_such_database_h3a" not in resp.text and "127.0.0.1" not in resp.text
    assert int(resp.headers["retry-after"]) > 0
    (logged,) = _logged(caplog, "commerceml exchange: database unavailable")
    assert "mm_no_such_database_h3a" in logged.error


def test_at_the_session_cap_the_least_recently_used_idle_session_makes_room(
    bridge_settings, tmp_path
):
    """1С logs in for every exchange: a login at the cap evicts the least recently used session
    with nothing left to import (a 10,000-login loop never gets a 5xx), never one with an
    upload in progress; when every session holds one, storage_full + Retry-After."""
    settings = _settings(bridge_settings, tmp_path, max_sessions=2)
    with _bridge(settings) as client:
        busy, idle = OneC(client).login(settings), OneC(client).login(settings)
        busy.upload("import.xml", b"<?xml version='1.0'?><partial")
        assert idle.call("init").status_code == 200
        fresh = OneC(client).login(settings)  # evicts `idle`, not `busy`
        _failure(idle.call("init"), 401, "unknown or expired")
        busy.upload("import.xml", b" more")  # still there, upload intact
        fresh.upload("offers.xml", b"<?xml version='1.0'?><partial")
        resp = OneC(client).checkauth(settings.commerceml.username, PASSWORD.get_secret_value())
        _failure(resp, 503, "2 exchange sessions are open", "storage_full")
        assert 0 < int(resp.headers["retry-after"])
        with _db(settings) as conn:  # `fresh` imported its file: idle
            conn.execute(
                "UPDATE commerceml_file SET processed_at = now() WHERE filename = 'offers.xml'"
            )
        for _ in range(20):  # a login loop: every login succeeds
            OneC(client).login(settings)
        busy.upload("import.xml", b" and more")
    with _db(settings) as conn:
        assert conn.execute("SELECT count(*) FROM commerceml_session").fetchone() == (2,)


def test_a_global_quota_across_sessions(bridge_settings, tmp_path):
    """Each session under its own cap, together over max_total_bytes: refused 503
    storage_full (1С retries), and accepted once an expired session's files are purged."""
    settings = _settings(bridge_settings, tmp_path, max_total_bytes=LIMIT + LIMIT // 2)
    chunk = b"<a>" + b"x" * (LIMIT - 7) + b"</a>"
    with _bridge(settings) as client:
        one, two = OneC(client).login(settings), OneC(client).login(settings)
        assert one.call("file", chunk, filename="import.xml").text == "success"
        resp = two.call("file", chunk, filename="import.xml")
        _failure(resp, 503, "exchange storage is full", "storage_full")
        assert int(resp.headers["retry-after"]) > 0
        with _db(settings) as conn:
            conn.execute(
                "UPDATE commerceml_session SET expires_at = now() - interval '1 second' "
                "WHERE id = (SELECT min(id) FROM commerceml_session)"
            )
        assert two.call("file", chunk, filename="import.xml").text == "success"
    with _db(settings) as conn:
        assert conn.execute("SELECT count(*), sum(size) FROM commerceml_file").fetchone() == (
            1,
            len(chunk),
        )


def _bomb(member: bytes, copies: int) -> bytes:
    buf = io.BytesIO()
    with warnings.catch_warnings(), zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        warnings.simplefilter("ignore")  # zipfile warns of the duplicate names
        for _ in range(copies):
            zf.writestr("orders.xml", member)
    return buf.getvalue()


def test_zip_bombs_are_refused_with_the_protocols_failure(bridge_settings, tmp_path):
    """The reported bomb (a few KB: one 4 MiB XML member and 39 more of the same name) and a
    plain ratio bomb, in both directions: refused before anything is unpacked, nothing
    published. Entry count and unpacked size caps come from the settings."""
    settings = _settings(bridge_settings, tmp_path, use_zip=True, max_zip_members=45)
    orders = samples.ORDERS.read_bytes()
    padded = orders.replace(
        b"</\xd0\x9a\xd0\xbe\xd0\xbc\xd0",
        b"<!--" + b" " * (4 << 20) + b"-->" + b"</\xd0\x9a\xd0\xbe\xd0\xbc\xd0",
        1,
    )
    duplicates, ratio = _bomb(padded, 40), _bomb(padded, 1)
    assert len(duplicates) < 400_000 and len(ratio) < 20_000
    many = samples.zipped({f"import_files/{i}.jpg": b"\xff\xd8" for i in range(46)})
    with _bridge(settings) as client:
        onec = OneC(client).login(settings)
        onec.call("init")
        onec.upload("bomb.zip", duplicates)
        _failure(
            onec.import_("orders.xml"),
            400,
            "more than one entry named orders.xml",
            "duplicate_member",
        )
        onec.upload("ratio.zip", ratio)
        _failure(onec.import_("ratio.zip"), 413, "zip bomb", "archive_too_large")
        onec.upload("many.zip", many)
        _failure(onec.import_("many.zip"), 413, "46 entries, more than 45", "archive_too_large")
        sale = OneC(client, kind="sale").login(settings)
        sale.call("init")
        *first, last = samples.chunks(duplicates, LIMIT)
        for piece in first:  # the archive's end is not there yet: stored, not opened
            assert sale.call("file", piece, filename="orders.zip").text == "success"
        _failure(
            sale.call("file", last, filename="orders.zip"),
            400,
            "more than one entry",
            "duplicate_member",
        )
        _failure(
            sale.call("file", ratio, filename="orders2.zip"), 413, "zip bomb", "archive_too_large"
        )
    assert _read(settings, "raw.onec.customer_order", 0) == []


def test_groups_nested_thousands_deep_are_a_clear_failure(onec):
    """Used to be a 500 (RecursionError in the classifier reader)."""
    opening = "".join(f"<Группы><Группа><Ид>g{i}</Ид>" for i in range(3000))
    doc = (
        "<?xml version='1.0' encoding='UTF-8'?><КоммерческаяИнформация><Классификатор>"
        + opening
        + "</Группа></Группы>" * 3000
        + "</Классификатор></КоммерческаяИнформация>"
    ).encode()
    onec.call("init")
    onec.upload("import.xml", doc)
    _failure(onec.import_("import.xml"), 400, "nested deeper than", "invalid_document")


def test_a_doctype_is_refused(onec, cml_settings):
    doc = (
        "<?xml version='1.0'?><!DOCTYPE d [<!ENTITY e 'x'>]><КоммерческаяИнформация>"
        "</КоммерческаяИнформация>"
    ).encode()
    onec.call("init")
    onec.upload("import.xml", doc)
    _failure(onec.import_("import.xml"), 400, "DOCTYPE", "invalid_document")


def test_a_sale_file_is_parsed_once_when_complete(cml_settings, monkeypatch):
    """Chunks that leave the file visibly incomplete are stored, not parsed: the file is
    read once, when its last chunk came (it used to be parsed at every chunk)."""
    checked = []
    real_check = document.check
    monkeypatch.setattr(document, "check", lambda stream: checked.append(1) or real_check(stream))
    orders = samples.ORDERS.read_bytes()
    pieces = samples.chunks(orders, len(orders) // 4 + 1)
    assert len(pieces) == 4
    with _bridge(cml_settings) as client:
        onec = OneC(client, kind="sale").login(cml_settings)
        onec.call("init")
        for piece in pieces:
            resp = onec.call("file", piece, filename="orders.xml")
            assert (resp.status_code, resp.text) == (200, "success")
    assert len(checked) == 1
    assert _keys(_read(cml_settings, "raw.onec.customer_order", 3)) == Counter(["36", "92", "93"])


def test_a_closing_tag_split_across_chunks_still_publishes(cml_settings):
    """The completeness check looks at the last two chunks: a last chunk holding only the
    end of the root's closing tag still completes the file."""
    orders = samples.ORDERS.read_bytes().rstrip()
    with _bridge(cml_settings) as client:
        onec = OneC(client, kind="sale").login(cml_settings)
        onec.call("init")
        for piece in (orders[:-10], orders[-10:]):
            assert onec.call("file", piece, filename="orders.xml").text == "success"
    assert _keys(_read(cml_settings, "raw.onec.customer_order", 3)) == Counter(["36", "92", "93"])


def test_a_zipped_exchange_at_the_default_settings(bridge_settings):
    """Only the password set: zip=yes, file_limit 8 MiB, the work folder in the system's
    temporary folder (not inside the installed package, read-only in the image)."""
    cml = bridge_settings.commerceml.model_copy(update={"password": PASSWORD})
    settings = bridge_settings.model_copy(update={"commerceml": cml})
    assert settings.commerceml.work_dir == Path(tempfile.gettempdir()) / "mmstream-commerceml"
    archive = samples.zipped(
        {"import.xml": samples.catalog(), "offers.xml": samples.offers_with_stock()}
    )
    with _bridge(settings) as client:
        onec = OneC(client).login(settings)
        assert onec.call("init").text == f"zip=yes\nfile_limit={8 * 1024 * 1024}"
        onec.upload("v8_exchange.zip", archive, chunk=8 * 1024 * 1024)
        assert onec.import_("import.xml").text == "success"
        assert onec.import_("offers.xml").text == "success"
    assert len(_read(settings, "raw.onec.product", 103)) == 103
    assert len(_read(settings, "raw.onec.price", 84)) == 84


LAYOUTS = Path(__file__).resolve().parents[2] / "fixtures" / "commerceml"


def test_a_3x_sale_file_publishes_every_contained_order(cml_settings, caplog):
    """CommerceML 3.x puts each order in a Контейнер: they were answered ``success`` and
    none was published. Through the real protocol, broker and PostgreSQL."""
    orders = (LAYOUTS / "cml3_orders.xml").read_bytes()
    with _bridge(cml_settings) as client:
        onec = OneC(client, kind="sale").login(cml_settings)
        assert onec.call("init").text == f"zip=no\nfile_limit={LIMIT}"
        assert list(_query(onec)) == []
        resp = onec.call("file", orders, filename="documents___a1b2.xml")
        assert (resp.status_code, resp.text) == (200, "success")
        # A sale file without any order is accepted (1С expects success) but not unseen.
        empty = onec.call(
            "file",
            "<?xml version='1.0' encoding='UTF-8'?><КоммерческаяИнформация "
            "ВерсияСхемы='3.1'><Unknown/></КоммерческаяИнформация>".encode(),
            filename="empty.xml",
        )
        assert (empty.status_code, empty.text) == (200, "success")
    records = _read(cml_settings, "raw.onec.customer_order", 2)
    assert _keys(records) == Counter(
        {"d1c0a8e2-6f7a-11eb-8105-00155d000c01": 1, "d1c0a8e4-6f7a-11eb-8105-00155d000c01": 1}
    )
    by_key = {r.key().decode(): json.loads(r.value()) for r in records}
    assert by_key["d1c0a8e2-6f7a-11eb-8105-00155d000c01"]["comment"] == "Оставить у двери"
    (warned,) = _logged(caplog, "commerceml orders file holds no order (Документ)")
    assert warned.levelno == logging.WARNING and warned.file == "empty.xml"
    assert not _logged(caplog, "commerceml orders file holds no order (Документ)")[1:]


def test_an_offer_package_publishes_its_price_types(onec, cml_settings):
    """A pure exchange with a site declares its price types only in the offers package."""
    onec.call("init")
    onec.upload("offers.xml", (LAYOUTS / "cml204_offers.xml").read_bytes())
    resp = onec.import_("offers.xml")
    assert (resp.status_code, resp.text) == (200, "success")
    types = _read(cml_settings, "raw.onec.price_type", 2)
    assert _keys(types) == Counter(
        {"bd72d8f3-55bc-11d9-848a-00112f43529a": 1, "bd72d8f4-55bc-11d9-848a-00112f43529a": 1}
    )
    assert {json.loads(r.value())["_source"] for r in types} == {"commerceml"}
