"""Issue 12's "done when": a chunked CommerceML catalog + offers exchange at default settings
ends with products, price types, prices and stock stored, and products, price types,
prices and stock delivered to Bitrix24.

1С's own conversation with the real bridge over HTTP (``checkauth`` → ``init`` → the zip in
several ``file`` chunks → ``import`` of each XML file), the real broker, PostgreSQL, sink,
entity sink and egress processes and the Bitrix24 emulator, at the default INFO log level.
The CommerceML settings are the defaults (``zip=yes``, the default ``file_limit``); only the
exchange password, which has no default, is set. Stock reaches the Bitrix24 store named by
the package's ``Склады`` (a CommerceML-only setup has no other description of a warehouse).

Then a CommerceML 3.x package split over four files (tests/fixtures/commerceml/cml3_*.xml:
the classifier with the price types and warehouses in ``import.xml``; ``offers.xml``,
``prices.xml`` and ``rests.xml`` naming them by id only), each imported by its own request
of the same session: its prices, stock rows and warehouse are named through the first
file's classifier, and its balance reaches Bitrix24 too."""

from __future__ import annotations

import base64
import io
import secrets
import zipfile
from decimal import Decimal
from pathlib import Path
from uuid import UUID

import httpx
import pytest
from pydantic import SecretStr

from tests.support.stack import wait_for

pytestmark = pytest.mark.e2e

PASSWORD = secrets.token_urlsafe(24)  # a production-fit secret: the bridge refuses weak ones
CATALOG = "9a1e0c00-2f4b-11ec-8d3d-0242ac130001"
GROUP = "9a1e0c01-2f4b-11ec-8d3d-0242ac130001"
BRAND, BRAND_VALUE = "9a1e0c10-2f4b-11ec-8d3d-0242ac130001", "9a1e0c11-2f4b-11ec-8d3d-0242ac130001"
RETAIL = "9a1e0c20-2f4b-11ec-8d3d-0242ac130001"
STORE = "9a1e0c30-2f4b-11ec-8d3d-0242ac130001"
KETTLE = "9a1e0c40-2f4b-11ec-8d3d-0242ac130001"
TOASTER = "9a1e0c41-2f4b-11ec-8d3d-0242ac130001"

IMPORT_XML = f"""<?xml version="1.0" encoding="UTF-8"?>
<КоммерческаяИнформация xmlns="urn:1C.ru:commerceml_2" ВерсияСхемы="2.08" ДатаФормирования="2021-10-18T10:00:00">
  <Классификатор>
    <Ид>{CATALOG}</Ид>
    <Наименование>Классификатор (Основной каталог товаров)</Наименование>
    <Группы><Группа><Ид>{GROUP}</Ид><Наименование>Кухня</Наименование></Группа></Группы>
    <Свойства>
      <Свойство>
        <Ид>{BRAND}</Ид><Наименование>Производитель</Наименование>
        <ТипЗначений>Справочник</ТипЗначений>
        <ВариантыЗначений>
          <Справочник><ИдЗначения>{BRAND_VALUE}</ИдЗначения><Значение>Заря</Значение></Справочник>
        </ВариантыЗначений>
      </Свойство>
    </Свойства>
  </Классификатор>
  <Каталог СодержитТолькоИзменения="false">
    <Ид>{CATALOG}</Ид><ИдКлассификатора>{CATALOG}</ИдКлассификатора>
    <Наименование>Основной каталог товаров</Наименование>
    <Товары>
      <Товар>
        <Ид>{KETTLE}</Ид><Артикул>K-1</Артикул><Наименование>Чайник</Наименование>
        <Штрихкод>4600000000011</Штрихкод>
        <БазоваяЕдиница Код="796" НаименованиеПолное="Штука">шт</БазоваяЕдиница>
        <Группы><Ид>{GROUP}</Ид></Группы>
        <ЗначенияСвойств>
          <ЗначенияСвойства><Ид>{BRAND}</Ид><Значение>{BRAND_VALUE}</Значение></ЗначенияСвойства>
        </ЗначенияСвойств>
        <ЗначенияРеквизитов>
          <ЗначениеРеквизита><Наименование>Полное наименование</Наименование>
            <Значение>Чайник электрический 1,7 л</Значение></ЗначениеРеквизита>
        </ЗначенияРеквизитов>
      </Товар>
      <Товар>
        <Ид>{TOASTER}</Ид><Артикул>T-2</Артикул><Наименование>Тостер</Наименование>
        <БазоваяЕдиница Код="796" НаименованиеПолное="Штука">шт</БазоваяЕдиница>
        <Группы><Ид>{GROUP}</Ид></Группы>
      </Товар>
    </Товары>
  </Каталог>
</КоммерческаяИнформация>
"""

OFFERS_XML = f"""<?xml version="1.0" encoding="UTF-8"?>
<КоммерческаяИнформация xmlns="urn:1C.ru:commerceml_2" ВерсияСхемы="2.08" ДатаФормирования="2021-10-18T10:00:02">
  <ПакетПредложений СодержитТолькоИзменения="false">
    <Ид>{CATALOG}#</Ид><Наименование>Пакет предложений (Основной каталог товаров)</Наименование>
    <ИдКаталога>{CATALOG}</ИдКаталога><ИдКлассификатора>{CATALOG}</ИдКлассификатора>
    <ТипыЦен>
      <ТипЦены>
        <Ид>{RETAIL}</Ид><Наименование>Розничная</Наименование><Валюта>руб</Валюта>
        <Налог><Наименование>НДС</Наименование><УчтеноВСумме>true</УчтеноВСумме></Налог>
      </ТипЦены>
    </ТипыЦен>
    <Склады><Склад><Ид>{STORE}</Ид><Наименование>Склад на Лесной</Наименование></Склад></Склады>
    <Предложения>
      <Предложение>
        <Ид>{KETTLE}</Ид><Наименование>Чайник</Наименование>
        <Цены><Цена><Представление>1 290 руб. за шт</Представление><ИдТипаЦены>{RETAIL}</ИдТипаЦены>
          <ЦенаЗаЕдиницу>1290</ЦенаЗаЕдиницу><Валюта>руб</Валюта><Единица>шт</Единица>
          <Коэффициент>1</Коэффициент></Цена></Цены>
        <Количество>5</Количество>
        <Склад ИдСклада="{STORE}" КоличествоНаСкладе="5"/>
      </Предложение>
      <Предложение>
        <Ид>{TOASTER}</Ид><Наименование>Тостер</Наименование>
        <Цены><Цена><ИдТипаЦены>{RETAIL}</ИдТипаЦены><ЦенаЗаЕдиницу>2490.50</ЦенаЗаЕдиницу>
          <Валюта>руб</Валюта><Единица>шт</Единица><Коэффициент>1</Коэффициент></Цена></Цены>
        <Количество>0</Количество>
        <Склад ИдСклада="{STORE}" КоличествоНаСкладе="0"/>
      </Предложение>
    </Предложения>
  </ПакетПредложений>
</КоммерческаяИнформация>
"""


@pytest.fixture
def settings(settings, tmp_path):
    # The exchange password has no default (unset, the endpoint is off); all else default.
    cml = settings.commerceml.model_copy(
        update={"password": SecretStr(PASSWORD), "work_dir": tmp_path / "cml"}
    )
    # A price may wait on the delayed path until its product is in Bitrix24 (~0.5 s a try).
    retry = settings.retry.model_copy(update={"max_attempts": 60, "budget_s": 60})
    return settings.model_copy(update={"commerceml": cml, "retry": retry})


class OneC:
    """The site-exchange client as 1С runs it, over HTTP against the bridge process."""

    def __init__(self, base: str) -> None:
        self.http = httpx.Client(base_url=base, timeout=30)
        self.cookie = ""

    def get(self, mode: str, **params) -> httpx.Response:
        return self.http.get(
            "/1c_exchange",
            params={"type": "catalog", "mode": mode, **params},
            headers={"Cookie": self.cookie},
        )

    def checkauth(self, user: str) -> None:
        token = base64.b64encode(f"{user}:{PASSWORD}".encode()).decode()
        resp = self.http.get(
            "/1c_exchange",
            params={"type": "catalog", "mode": "checkauth"},
            headers={"Authorization": f"Basic {token}"},
        )
        status, name, value = resp.text.split("\n")[:3]
        assert (resp.status_code, status) == (200, "success"), resp.text
        self.cookie = f"{name}={value}"

    def file(self, filename: str, chunk: bytes) -> None:
        resp = self.http.post(
            "/1c_exchange",
            params={"type": "catalog", "mode": "file", "filename": filename},
            content=chunk,
            headers={"Cookie": self.cookie, "Content-Type": "application/octet-stream"},
        )
        assert (resp.status_code, resp.text) == (200, "success"), resp.text


FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "commerceml"
CML3_FILES = ("import.xml", "offers.xml", "prices.xml", "rests.xml")
CML3_PRODUCT = "e5b1f840-7b4a-11eb-8112-00155d000d01"
CML3_BRAND = "e5b1f810-7b4a-11eb-8112-00155d000d01"
CML3_BRAND_VALUE = "e5b1f811-7b4a-11eb-8112-00155d000d01"
CML3_RETAIL = "e5b1f820-7b4a-11eb-8112-00155d000d01"
CML3_STORE = "e5b1f830-7b4a-11eb-8112-00155d000d01"


def archive(members: dict[str, bytes] | None = None) -> bytes:
    if members is None:
        members = {
            "import.xml": IMPORT_XML.encode("utf-8"),
            "offers.xml": OFFERS_XML.encode("utf-8"),
        }
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def in_chunks(data: bytes, count: int) -> list[bytes]:
    size = len(data) // count + 1
    return [data[i : i + size] for i in range(0, len(data), size)]


def store_amount(pipeline, store: int, product: int) -> float | None:
    """The balance Bitrix24 shows for the product in the store (None: no row)."""
    hook = pipeline.settings.bitrix24.webhook_url.get_secret_value()
    rows = httpx.post(
        f"{hook}catalog.storeproduct.list.json",
        timeout=10,
        json={
            "select": ["id", "storeId", "productId", "amount"],
            "filter": {"storeId": store, "productId": product},
        },
    ).json()["result"]["storeProducts"]
    return rows[0]["amount"] if rows else None


def emulator(pipeline, path: str) -> list[dict]:
    return httpx.get(f"{pipeline.emulator_url}/_emulator/{path}", timeout=10).json()


def test_a_chunked_catalog_and_offers_exchange_ends_stored_and_in_bitrix24(pipeline):
    pipeline.start_emulator()
    pipeline.start_sink()
    pipeline.start_entity_sink()
    pipeline.start_egress()
    pipeline.start_bridge()

    onec = OneC(pipeline.bridge_url)
    onec.checkauth(pipeline.settings.commerceml.username)
    init = onec.get("init")
    assert init.status_code == 200
    assert init.text.split("\n") == ["zip=yes", f"file_limit={8 * 1024 * 1024}"]

    # 1С cuts the archive at file_limit; three chunks prove the pieces are put back together.
    pieces = in_chunks(archive(), 3)
    assert len(pieces) == 3
    for piece in pieces:
        onec.file("import.zip", piece)
    for name in ("import.xml", "offers.xml"):
        resp = onec.get("import", filename=name)
        assert (resp.status_code, resp.text) == (200, "success"), (name, resp.text)

    # PostgreSQL: products (with their resolved property), price type, prices, stock.
    products = pipeline.wait_sql(
        "SELECT id, name, full_name, article, barcode, properties FROM product ORDER BY article",
        lambda r: len(r) == 2,
    )
    assert [(str(p[0]), p[1], p[2], p[3], p[4]) for p in products] == [
        (KETTLE, "Чайник", "Чайник электрический 1,7 л", "K-1", "4600000000011"),
        (TOASTER, "Тостер", "", "T-2", ""),
    ]
    assert products[0][5] == [
        {"id": BRAND, "name": "Производитель", "value": "Заря", "value_id": BRAND_VALUE}
    ]
    assert products[1][5] == []
    types = pipeline.wait_sql("SELECT id, name, currency FROM price_type", lambda r: len(r) == 1)
    assert types == [(UUID(RETAIL), "Розничная", "RUB")]
    prices = pipeline.wait_sql(
        "SELECT product_id, price_type_id, price, currency FROM price ORDER BY price",
        lambda r: len(r) == 2,
    )
    assert prices == [
        (UUID(KETTLE), UUID(RETAIL), Decimal("1290"), "RUB"),
        (UUID(TOASTER), UUID(RETAIL), Decimal("2490.50"), "RUB"),
    ]
    stock = pipeline.wait_sql(
        "SELECT product_id, warehouse_id, quantity FROM stock ORDER BY product_id, warehouse_id",
        lambda r: len(r) == 4,
    )
    assert sorted(((str(p), str(w), q) for p, w, q in stock)) == sorted(
        [
            (KETTLE, "None", Decimal("5")),
            (KETTLE, STORE, Decimal("5")),
            (TOASTER, "None", Decimal("0")),
            (TOASTER, STORE, Decimal("0")),
        ]
    )

    # Bitrix24: the products, the price type and both prices (after their products).
    b24_products = wait_for(
        pipeline,
        "products in Bitrix24",
        lambda: (p := pipeline.emulator_products()) and len(p) == 2 and p,
    )
    by_xml = {p["xmlId"]: p for p in b24_products}
    assert {x: by_xml[x]["name"] for x in by_xml} == {KETTLE: "Чайник", TOASTER: "Тостер"}
    b24_types = wait_for(
        pipeline,
        "price type in Bitrix24",
        lambda: (t := emulator(pipeline, "directory/priceType")) and t,
    )
    assert [(t["name"], t["xmlId"]) for t in b24_types] == [("Розничная", RETAIL)]
    b24_prices = wait_for(
        pipeline,
        "prices in Bitrix24",
        lambda: (p := emulator(pipeline, "directory/price")) and len(p) == 2 and p,
    )
    assert sorted(
        (p["productId"], p["catalogGroupId"], p["price"], p["currency"]) for p in b24_prices
    ) == sorted(
        [
            (by_xml[KETTLE]["id"], b24_types[0]["id"], 1290, "RUB"),
            (by_xml[TOASTER]["id"], b24_types[0]["id"], 2490.5, "RUB"),
        ]
    )
    # Once each: no duplicate from the chunking, the two imports or a retry.
    assert len(pipeline.emulator_calls("catalog.price.add")) == 2
    # (Bitrix24 method names are case-insensitive; the portal logs them as called.)
    assert (
        len(
            [c for c in pipeline.emulator_calls() if c["method"].lower() == "catalog.pricetype.add"]
        )
        == 1
    )
    assert len(pipeline.emulator_calls("catalog.product.add")) == 2

    # Stock: the package's Склады made the store, the kettle's balance went in through a
    # conducted warehouse document; the toaster's 0 needs none (and the totals over all
    # warehouses have no Bitrix24 store).
    stores = wait_for(
        pipeline,
        "the warehouse as a Bitrix24 store",
        lambda: (t := emulator(pipeline, "directory/store")) and t,
    )
    assert [(t["title"], t["xmlId"]) for t in stores] == [("Склад на Лесной", STORE)]
    store = int(stores[0]["id"])
    wait_for(
        pipeline,
        "the kettle's balance in the store",
        lambda: store_amount(pipeline, store, int(by_xml[KETTLE]["id"])) == 5,
    )
    assert store_amount(pipeline, store, int(by_xml[TOASTER]["id"])) in (None, 0)
    (element,) = pipeline.emulator_calls("catalog.document.element.add")
    assert Decimal(str(element["params"]["fields"]["amount"])) == 5
    assert len(pipeline.emulator_calls("catalog.document.conduct")) == 1

    # A 3.x package split over four files: one archive in chunks, one import per file.
    onec = OneC(pipeline.bridge_url)
    onec.checkauth(pipeline.settings.commerceml.username)
    assert onec.get("init").status_code == 200
    for piece in in_chunks(
        archive({n: (FIXTURES / f"cml3_{n}").read_bytes() for n in CML3_FILES}), 2
    ):
        onec.file("package.zip", piece)
    for name in CML3_FILES:
        resp = onec.get("import", filename=name)
        assert (resp.status_code, resp.text) == (200, "success"), (name, resp.text)

    (props,) = pipeline.wait_sql(
        "SELECT properties FROM product WHERE id = %s", lambda r: len(r) == 1, 60, CML3_PRODUCT
    )
    assert props[0] == [
        {"id": CML3_BRAND, "name": "Бренд", "value": "Северный ветер", "value_id": CML3_BRAND_VALUE}
    ]
    cml3_prices = pipeline.wait_sql(
        "SELECT characteristic_id IS NULL, price_type_id, price, currency FROM price "
        "WHERE product_id = %s ORDER BY price",
        lambda r: len(r) == 2,
        60,
        CML3_PRODUCT,
    )
    assert cml3_prices == [
        (True, UUID(CML3_RETAIL), Decimal("790"), "RUB"),
        (False, UUID(CML3_RETAIL), Decimal("850.00"), "RUB"),
    ]
    cml3_stock = pipeline.wait_sql(
        "SELECT characteristic_id IS NULL, warehouse_id, warehouse_name, quantity FROM stock "
        "WHERE product_id = %s ORDER BY quantity",
        lambda r: len(r) == 2,
        60,
        CML3_PRODUCT,
    )
    assert cml3_stock == [
        (False, None, "", Decimal("3")),
        (True, UUID(CML3_STORE), "Основной склад", Decimal("14")),
    ]
    assert pipeline.wait_sql(
        "SELECT name FROM warehouse WHERE id = %s", lambda r: len(r) == 1, 60, CML3_STORE
    ) == [("Основной склад",)]
    cml3_store = wait_for(
        pipeline,
        "the 3.x warehouse as a Bitrix24 store",
        lambda: next(
            (t for t in emulator(pipeline, "directory/store") if t["xmlId"] == CML3_STORE), None
        ),
    )
    assert cml3_store["title"] == "Основной склад"
    cml3_b24 = wait_for(
        pipeline,
        "the 3.x product in Bitrix24",
        lambda: next((p for p in pipeline.emulator_products() if p["xmlId"] == CML3_PRODUCT), None),
    )
    wait_for(
        pipeline,
        "the 3.x balance in the store",
        lambda: store_amount(pipeline, int(cml3_store["id"]), int(cml3_b24["id"])) == 14,
    )
