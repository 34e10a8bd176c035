"""The OData write mode's pure parts: the records it sends 1С, the delivery confirmation's
fields (nothing when 1С shows it already), the answer in the HTTP service's terms, and the
per-flow selection of the action."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from mmstream.errors import ConfigurationError
from mmstream.settings import ODataWriteSettings, OneCWriteVia, Settings
from stages.egress.actions import ACTIONS, action_ref
from stages.egress.courier_documents import instant_order_body, return_body
from stages.egress.onec_odata import (
    delivery_fields,
    delivery_target,
    entity_sets,
    instant_order_record,
    return_record,
    write_result,
)

MSK = ZoneInfo("Europe/Moscow")
ORDER_ID = "1b9d6bcd-bbfd-4b2d-9b5d-ab8dfbbd4bed"
CUSTOMER = "6ca8e4a2-5f3c-11ee-8c99-0242ac120002"
PRODUCT = "0c2f7a1e-7f1b-4f7e-9b8a-2f4b1d9c3e10"
SHIPMENT = "87fa6cc2-e901-11ea-8591-000c29b45b09"
LINES = [{"product_id": PRODUCT, "quantity": 2.0, "price": 350.0, "amount": 700.0}]


def with_modes(**modes) -> Settings:
    settings = Settings()
    return settings.model_copy(
        update={"onec": settings.onec.model_copy(update={"write_via": OneCWriteVia(**modes)})}
    )


def test_an_instant_order_becomes_the_configurations_record():
    payload = {
        "id": ORDER_ID,
        "closed_at": "2026-12-06T12:30:00+00:00",
        "amount": "700.00",
        "currency": "RUB",
        "delivery_address": "Москва, Тверская 1",
        "comment": "у подъезда",
    }
    body = instant_order_body(
        payload, customer=CUSTOMER, lines=LINES, document_type="order", tz=MSK, post=True
    )
    record = instant_order_record(
        body, {"Организация_Key": SHIPMENT, "Комментарий": "по умолчанию"}
    )
    assert record == {
        "Организация_Key": SHIPMENT,
        "Ref_Key": ORDER_ID,
        "Date": "2026-12-06T15:30:00",
        "Контрагент_Key": CUSTOMER,
        "СуммаДокумента": 700,
        "Комментарий": "у подъезда",
        "АдресДоставки": "Москва, Тверская 1",
        "Товары": [
            {
                "LineNumber": "1",
                "Номенклатура_Key": PRODUCT,
                "Количество": 2.0,
                "Цена": 350.0,
                "Сумма": 700.0,
            }
        ],
    }
    assert "post" not in record and "Posted" not in record  # posting is /Post, not a field


def test_a_return_names_its_shipment_by_the_configurations_field():
    payload = {"id": ORDER_ID, "reported_at": "2026-12-06T10:00:00+03:00", "courier_amount": None}
    body = return_body(
        payload, customer=CUSTOMER, lines=LINES, shipment=SHIPMENT, tz=MSK, post=True
    )
    assert return_record(body, {}, "ut11")["ДокументРеализации_Key"] == SHIPMENT
    old = return_record(body, {}, "ut103")
    assert old["ДокументОснование"] == SHIPMENT and "СуммаДокумента" not in old
    assert old["Date"] == "2026-12-06T10:00:00"


def test_entity_sets_per_configuration_and_overrides():
    assert entity_sets(ODataWriteSettings()) == {
        "order": "Document_ЗаказКлиента",
        "shipment": "Document_РеализацияТоваровУслуг",
        "return": "Document_ВозвратТоваровОтКлиента",
    }
    old = entity_sets(
        ODataWriteSettings(configuration="ut103", shipment_entity_set="РасходнаяНакладная")
    )
    assert old == {
        "order": "Document_ЗаказПокупателя",
        "shipment": "Document_РасходнаяНакладная",
        "return": "Document_ВозвратТоваровОтПокупателя",
    }


def test_the_delivery_confirmation_appends_once_and_sets_a_mapped_status():
    cfg = ODataWriteSettings()
    first = delivery_fields({"Комментарий": "позвонить заранее"}, cfg, "t1", "delivered")
    assert first == {"Комментарий": "позвонить заранее\n[MM доставка] t1: delivered"}
    # 1С shows it already (a retry, a replay): nothing to send.
    assert delivery_fields(first, cfg, "t1", "delivered") == {}
    # Another outcome of the same task is a new line.
    assert delivery_fields(first, cfg, "t1", "failed") == {
        "Комментарий": first["Комментарий"] + "\n[MM доставка] t1: failed"
    }
    status = ODataWriteSettings(
        delivery_comment_field="",
        delivery_status_field="Статус",
        delivery_status_values={"delivered": "Закрыт"},
    )
    assert delivery_fields({"Статус": "КОтгрузке"}, status, "t1", "delivered") == {
        "Статус": "Закрыт"
    }
    assert delivery_fields({"Статус": "Закрыт"}, status, "t1", "delivered") == {}
    assert delivery_fields({"Статус": "КОтгрузке"}, status, "t1", "failed") == {}  # not mapped


def test_the_delivery_target_prefers_the_order():
    sets = entity_sets(ODataWriteSettings(configuration="ut103"))
    assert delivery_target({"order_id": ORDER_ID.upper(), "shipment_id": SHIPMENT}, sets) == (
        "Document_ЗаказПокупателя",
        ORDER_ID,
    )
    assert delivery_target({"shipment_id": SHIPMENT}, sets) == (
        "Document_РеализацияТоваровУслуг",
        SHIPMENT,
    )


def test_the_odata_answer_reads_as_the_http_services_result():
    at = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
    record = {
        "Ref_Key": ORDER_ID.upper(),
        "Number": "ММ00-000001",
        "Date": "2026-12-06T15:00:00",
        "Posted": True,
    }
    result = write_result(
        "Document_ЗаказКлиента",
        record,
        key=f"instant_order:{ORDER_ID}",
        operation="instant_order",
        replayed=True,
        now=at,
    )
    assert result.document.ref_key == ORDER_ID and result.document.posted and result.replayed
    assert result.raw == {
        "idempotency_key": f"instant_order:{ORDER_ID}",
        "operation": "instant_order",
        "created_at": "2026-12-06T12:00:00+00:00",
        "document": {
            "type": "Document_ЗаказКлиента",
            "ref_key": ORDER_ID,
            "number": "ММ00-000001",
            "date": "2026-12-06T15:00:00",
            "posted": True,
        },
    }


def test_each_flow_picks_its_action_by_its_own_setting():
    default = Settings()
    for topic in ("egress.onec.delivery_task", "egress.onec.instant_order", "egress.onec.return"):
        assert action_ref(topic, default) == ACTIONS[topic]  # nothing changes by default
    odata = with_modes(delivery_status="odata", instant_order="odata", returns="odata")
    assert (
        action_ref("egress.onec.delivery_task", odata)
        == "stages.egress.deliveries:DeliveryConfirmationOData"
    )
    assert (
        action_ref("egress.onec.instant_order", odata)
        == "stages.egress.courier_documents:InstantOrderToOneCOData"
    )
    assert (
        action_ref("egress.onec.return", odata)
        == "stages.egress.courier_documents:ReturnToOneCOData"
    )
    # Per flow: only the return goes through OData here.
    mixed = with_modes(returns="odata")
    assert action_ref("egress.onec.instant_order", mixed) == ACTIONS["egress.onec.instant_order"]
    assert (
        action_ref("egress.onec.return", mixed)
        == "stages.egress.courier_documents:ReturnToOneCOData"
    )
    # Topics without a choice are not affected.
    assert (
        action_ref("egress.bitrix24.instant_order", odata)
        == ACTIONS["egress.bitrix24.instant_order"]
    )
    with pytest.raises(ConfigurationError, match="no egress action"):
        action_ref("egress.onec.invoice", odata)


def test_the_selected_classes_exist_and_are_distinct():
    import importlib

    odata = with_modes(delivery_status="odata", instant_order="odata", returns="odata")
    for topic in ("egress.onec.delivery_task", "egress.onec.instant_order", "egress.onec.return"):
        module, _, name = action_ref(topic, odata).partition(":")
        cls = getattr(importlib.import_module(module), name)
        assert cls.target == "onec" and cls.__name__.endswith("OData")


def test_write_via_reads_return_and_returns_from_the_environment(monkeypatch):
    monkeypatch.setenv("MM_ONEC__WRITE_VIA__RETURN", "odata")
    monkeypatch.setenv("MM_ONEC__WRITE_VIA__DELIVERY_STATUS", "odata")
    settings = Settings()
    assert settings.onec.write_via.returns == "odata"
    assert settings.onec.write_via.delivery_status == "odata"
    assert settings.onec.write_via.instant_order == "http_service"
    monkeypatch.setenv("MM_ONEC__WRITE_VIA__DELIVERY_STATUS", "commerceml")
    with pytest.raises(ValueError):
        Settings()


def test_a_chosen_action_that_cannot_be_loaded_stops_the_worker_with_its_name(monkeypatch):
    from types import SimpleNamespace

    from stages.egress import actions

    targets = SimpleNamespace(settings=with_modes(returns="odata"))
    monkeypatch.setitem(
        actions.WRITE_MODES,
        "egress.onec.return",
        ("returns", {"odata": "stages.egress.no_such_module:ReturnToNowhere"}),
    )
    with pytest.raises(ConfigurationError, match="no_such_module"):
        actions.action_for("egress.onec.return", targets)
