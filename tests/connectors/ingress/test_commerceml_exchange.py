"""The CommerceML exchange as an unmodified 1С conducts it, against the real bridge, broker
and PostgreSQL: checkauth → init → file (chunked) → import, and the sale direction.
Every check reads the raw topics back."""

from __future__ import annotations

import base64
import json
import xml.etree.ElementTree as ET
from collections import Counter
from contextlib import contextmanager

import psycopg
import pytest
from fastapi.testclient import TestClient

from connectors.commerceml.auth import COOKIE_NAME
from connectors.ingress.app import create_app
from mmstream.embedded.broker import EmbeddedBroker
from mmstream.embedded.ports import free_port
from mmstream.envelope import decode_headers
from mmstream.kafka.admin import apply
from mmstream.topics import load_catalog
from tests.connectors.commerceml import samples
from tests.support.topics import count_records

LIMIT = 64 * 1024  # file_limit told to 1С: the real offers.xml (267 KB) needs 5 chunks


class OneC:
    """Speaks the protocol the way 1С does: Basic at checkauth, then the cookie it got."""

    def __init__(self, client: TestClient, kind: str = "catalog", url: str = "/1c_exchange") -> None:
        self.client, self.kind, self.url = client, kind, url
        self.cookie: str | None = None

    def call(self, mode: str, content: bytes | None = None, **params):
        headers = {"Cookie": self.cookie} if self.cookie else {}
        query = {"type": self.kind, "mode": mode, **params}
        if content is None:
            return self.client.get(self.url, params=query, headers=headers)
        return self.client.post(self.url, params=query, content=content,
                                headers={**headers, "Content-Type": "application/octet-stream"})

    def checkauth(self, user: str, password: str):
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        resp = self.client.get(self.url, params={"type": self.kind, "mode": "checkauth"},
                               headers={"Authorization": f"Basic {token}"})
        lines = resp.text.split("\n")
        if resp.status_code == 200 and lines[0] == "success":
            self.cookie = f"{lines[1]}={lines[2]}"
        return resp

    def login(self, settings) -> OneC:
        resp = self.checkauth(settings.commerceml.username, settings.commerceml.password.get_secret_value())
        assert resp.status_code == 200 and resp.text.split("\n")[:2] == ["success", COOKIE_NAME], resp.text
        return self

    def upload(self, filename: str, data: bytes, chunk: int = LIMIT) -> None:
        for piece in samples.chunks(data, chunk):
            resp = self.call("file", piece, filename=filename)
            assert (resp.status_code, resp.text) == (200, "success")

    def import_(self, filename: str):
        return self.call("import", filename=filename)


def _settings(base, tmp_path, **commerceml):
    cml = base.commerceml.model_copy(update={"file_limit_bytes": LIMIT, "use_zip": False,
                                             "work_dir": tmp_path, **commerceml})
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


def _failure(resp, status: int, words: str) -> None:
    assert resp.status_code == status, resp.text
    lines = resp.text.split("\n")
    assert lines[0] == "failure" and words in lines[1], resp.text
    assert lines[2] == f"request_id={resp.headers['x-request-id']}"


def _read(settings, topic: str, expect: int):
    return count_records(settings, topic, expect_at_least=expect)


def _keys(records) -> Counter:
    return Counter(r.key().decode() for r in records)


def test_catalog_exchange_chunked(onec, cml_settings):
    """Plain files (zip=no) bigger than file_limit, sent in chunks, imported: every product,
    price and stock lands once on its raw topic, keyed by the canonical source id."""
    init = onec.call("init")
    assert (init.status_code, init.text) == (200, f"zip=no\nfile_limit={LIMIT}")
    catalog, offers = samples.catalog(), samples.offers_with_stock()
    assert len(catalog) > 2 * LIMIT and len(offers) > 2 * LIMIT
    onec.upload("import.xml", catalog)
    onec.upload("offers.xml", offers)
    assert onec.import_("import.xml").text == "success"
    assert onec.import_("offers.xml").text == "success"
    assert onec.call("complete").text == "success"

    ids, priced = samples.offer_ids(), samples.priced_offer_ids()
    products = _read(cml_settings, "raw.onec.product", len(ids))
    assert _keys(products) == Counter(i.split("#")[0] for i in ids)
    payloads = [json.loads(r.value()) for r in products]
    assert sorted(p["cml_id"] for p in payloads) == sorted(ids)
    assert sorted(p["cml_id"] for p in payloads if p["deleted"]) == sorted(samples.deleted_offer_ids())
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
    archive = samples.zipped({"import.xml": samples.catalog(), "offers.xml": samples.OFFERS.read_bytes(),
                              "import_files/23/235ccc6d.jpg": b"\xff\xd8\xff\xe0 not really a jpeg"})
    with _bridge(settings) as client:
        onec = OneC(client, url="/1c_exchange.php").login(settings)
        assert onec.call("init").text == f"zip=yes\nfile_limit={LIMIT}"
        onec.upload("import.zip", archive, chunk=LIMIT // 3)
        assert onec.import_("import.xml").text == "success"
        assert onec.import_("offers.xml").text == "success"
    assert _keys(_read(settings, "raw.onec.price", 84)) == Counter(
        f"{i}:{samples.PRICE_TYPE}" for i in samples.priced_offer_ids())
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
        _failure(onec.call("file", b"x", filename="../../etc/passwd"), 400, "not a plain relative path")
        whole = samples.OFFERS.read_bytes()
        _failure(onec.call("file", whole, filename="offers.xml"), 413, f"file_limit={LIMIT}")
        _failure(onec.import_("offers.xml"), 404, "was not uploaded")
        _failure(onec.import_("never.xml"), 404, "was not uploaded")
        onec.upload("broken.xml", whole[: len(whole) // 2])
        _failure(onec.import_("broken.xml"), 400, "incomplete")
        onec.upload("bad.xml", whole.decode("utf-8-sig").replace(
            "<ЦенаЗаЕдиницу>2042.66", "<ЦенаЗаЕдиницу>дорого").encode())
        _failure(onec.import_("bad.xml"), 422, "'дорого' is not a number")
        onec.upload("offers.xml", whole)  # the same file, chunked: accepted
        assert onec.import_("offers.xml").text == "success"
    prices = _read(cml_settings, "raw.onec.price", 84)
    assert _keys(prices) == Counter(f"{i}:{samples.PRICE_TYPE}" for i in samples.priced_offer_ids())
    assert _read(cml_settings, "raw.onec.product", 0) == []


def test_expired_session(onec, cml_settings):
    with psycopg.connect(cml_settings.database_url.get_secret_value().replace("+psycopg", "")) as conn:
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
                conn.execute("INSERT INTO commerceml_order_export (document_id, document) VALUES (%s, %s)",
                             (doc_id, f"<Документ><Ид>{doc_id}</Ид><Номер>{doc_id}</Номер></Документ>"))
            conn.execute("INSERT INTO commerceml_order_export (document_id, document) "
                         "VALUES ('broken', '<Документ><Ид>')")
        assert [d.findtext("Ид") for d in _query(onec)] == ["A-1", "A-2"]
        assert onec.call("success").text == "success"
        assert list(_query(onec)) == []
    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT document_id, acknowledged_at IS NOT NULL FROM commerceml_order_export "
                            "ORDER BY id").fetchall()
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
        kafka = settings.kafka.model_copy(update={"bootstrap_servers": broker.bootstrap,
                                                  "produce_timeout_s": 2.0})
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
        resp = OneC(client).checkauth(cml_settings.commerceml.username,
                                      cml_settings.commerceml.password.get_secret_value())
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
    onec.upload("other.zip", samples.zipped({"offers.xml": good, "orders.xml": samples.ORDERS.read_bytes()}))
    assert onec.import_("other.zip").text == "success"
    assert len(_read(cml_settings, "raw.onec.price", 84)) == 84
    assert _keys(_read(cml_settings, "raw.onec.customer_order", 3)) == Counter(["36", "92", "93"])
