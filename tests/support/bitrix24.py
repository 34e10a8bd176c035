"""Bitrix24 test helpers: event bodies exactly as a portal posts them, and the enrichment
worker (plus the Bitrix24 emulator) as processes next to the test."""

from __future__ import annotations

import json
import sys
import uuid
from pathlib import Path
from urllib.parse import urlencode

import httpx
import yaml
from confluent_kafka import Consumer, TopicPartition
from pydantic import SecretStr

from mmstream.serve import free_port
from mmstream.settings import Settings
from stages.enrich.worker import group_id
from tests.support.processes import Proc, eventually
from tests.support.stack import Pipeline

MEMBER_ID = "a223c6b3710f85df22e9377d6c4f7553"
APP_TOKEN = "51856fefc120afa4b628cc82d3935cce"
DOMAIN = "mastermobile.bitrix24.ru"
DLQ_TOPIC = "dlq.enrich.bitrix24"


def _flatten(prefix: str, value, out: list[tuple[str, str]]) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            _flatten(f"{prefix}[{k}]" if prefix else str(k), v, out)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _flatten(f"{prefix}[{i}]", v, out)
    else:
        out.append((prefix, str(value)))


def php_form(doc: dict) -> bytes:
    """A nested dict as PHP's http_build_query writes it (brackets percent-encoded)."""
    pairs: list[tuple[str, str]] = []
    _flatten("", doc, pairs)
    return urlencode(pairs).encode()


def event_doc(
    event: str,
    data: dict | str,
    *,
    member_id: str = MEMBER_ID,
    token: str = APP_TOKEN,
    ts: str = "1736405807",
    handler_id: str = "201",
    domain: str = DOMAIN,
) -> dict:
    """An outbound event as an OAuth application receives it (fields in the portal's order)."""
    return {
        "event": event,
        "event_handler_id": handler_id,
        "data": data,
        "ts": ts,
        "auth": {
            "access_token": "s6p6eclrvim6da22ft9ch94ekreb52lv",
            "expires": str(int(ts) + 3600),
            "expires_in": "3600",
            "scope": "crm,task,catalog",
            "domain": domain,
            "server_endpoint": "https://oauth.bitrix.info/rest/",
            "status": "L",
            "client_endpoint": f"https://{domain}/rest/",
            "member_id": member_id,
            "user_id": "1",
            "refresh_token": "4s386p3q0tr8dy89xvmt96234v3dljg8",
            "application_token": token,
        },
    }


def event_body(event: str, ident: str | int, *, entity_type_id: int | None = None, **kw) -> bytes:
    """The form body of a supported event about entity ``ident``, shaped per event family."""
    name = event.upper()
    if name.startswith("ONTASK"):
        after = "undefined" if name == "ONTASKDELETE" else {"ID": str(ident)}
        data = {
            "FIELDS_BEFORE": {"ID": str(ident)},
            "FIELDS_AFTER": after,
            "IS_ACCESSIBLE_BEFORE": "N",
            "IS_ACCESSIBLE_AFTER": "undefined",
        }
    elif name.startswith("CATALOG.PRODUCT"):
        data = {"FIELDS": {"ID": str(ident), "TYPE": "1"}}
    elif entity_type_id is not None:
        data = {"FIELDS": {"ID": str(ident), "ENTITY_TYPE_ID": str(entity_type_id)}}
    else:
        data = {"FIELDS": {"ID": str(ident)}}
    return php_form(event_doc(event, data, **kw))


def placement_body(member_id: str = MEMBER_ID) -> bytes:
    """What a portal posts when a user opens an application placement (not an event)."""
    return urlencode(
        {
            "DOMAIN": DOMAIN,
            "PROTOCOL": "1",
            "LANG": "ru",
            "APP_SID": "9a0b8f3c1d2e",
            "AUTH_ID": "s6p6eclrvim6da22ft9ch94ekreb52lv",
            "AUTH_EXPIRES": "3600",
            "REFRESH_ID": "4s386p3q0tr8dy89xvmt96234v3dljg8",
            "member_id": member_id,
            "status": "L",
            "PLACEMENT": "CRM_DEAL_DETAIL_TAB",
            "PLACEMENT_OPTIONS": '{"ID":"42"}',
        }
    ).encode()


def install_body() -> bytes:
    """The ONAPPINSTALL callback a portal posts to the handler URL on installation."""
    return php_form(
        event_doc(
            "ONAPPINSTALL", {"VERSION": "1", "ACTIVE": "Y", "INSTALLED": "Y", "LANGUAGE_ID": "ru"}
        )
    )


def with_tokens(settings: Settings, **bitrix24) -> Settings:
    """Settings accepting events from the test portal (plus other Bitrix24 overrides)."""
    bx = settings.bitrix24.model_copy(
        update={"application_tokens": {MEMBER_ID: SecretStr(APP_TOKEN)}, **bitrix24}
    )
    return settings.model_copy(update={"bitrix24": bx})


# -- processes ---------------------------------------------------------------------------


_ENRICH_CODE = (
    "from mmstream import log; from mmstream.settings import get_settings; "
    "from stages.enrich.worker import run; s = get_settings(); "
    "log.setup('worker-enrich-bitrix24', s.log_level, s.log_format); run(s, metrics_port=0)"
)


class EnrichStack(Pipeline):
    """A Pipeline with the Bitrix24 enrichment worker and helpers for its topics and state."""

    def start_enrich(self) -> Proc:
        """Start the enrichment worker (``stages.enrich.worker.run``) as a process."""
        proc = Proc(
            "enrich", [], self.env, self.log_dir, argv=[sys.executable, "-c", _ENRICH_CODE]
        ).start()
        self.procs["enrich"] = proc
        return proc

    def configure(self, **bitrix24) -> EnrichStack:
        """Change Bitrix24 settings for the processes started from now on."""
        bx = self.settings.bitrix24.model_copy(update=bitrix24)
        self.settings = self.settings.model_copy(update={"bitrix24": bx})
        return self

    def post_event(self, event: str, ident: int | str, **kw) -> httpx.Response:
        """POST an outbound event to the bridge process, as the portal does."""
        resp = httpx.post(
            f"{self.bridge_url}/v1/bitrix24/events",
            content=event_body(event, ident, **kw),
            headers={"Content-Type": "application/x-www-form-urlencoded"},
            timeout=30,
        )
        assert resp.status_code == 200, resp.text
        return resp

    def rest(self, method: str, params: dict) -> dict:
        """Call the emulated portal directly (what the enrichment should have seen)."""
        url = f"{self.settings.bitrix24.webhook_url.get_secret_value()}{method}.json"
        return httpx.post(url, json=params, timeout=10).json()["result"]

    # -- emulator state ------------------------------------------------------------------
    def put_entity(self, entity: str, ident: int | str, fields: dict) -> dict:
        resp = httpx.put(
            f"{self.emulator_url}/_emulator/entities/{entity}/{ident}", json=fields, timeout=10
        )
        resp.raise_for_status()
        return resp.json()

    def delete_entity(self, entity: str, ident: int | str) -> None:
        httpx.delete(
            f"{self.emulator_url}/_emulator/entities/{entity}/{ident}", timeout=10
        ).raise_for_status()

    def batch_calls(self) -> list[dict]:
        return self.emulator_calls("batch")

    # -- topics ----------------------------------------------------------------------------
    def wait_committed(self, group: str, records: list, timeout_s: float = 60.0) -> None:
        """Wait until ``group`` committed past every one of ``records`` (Kafka messages)."""
        ends: dict[tuple[str, int], int] = {}
        for msg in records:
            tp = (msg.topic(), msg.partition())
            ends[tp] = max(ends.get(tp, -1), msg.offset() + 1)
        consumer = Consumer(
            {**self.settings.kafka.client_config(), "group.id": group, "enable.auto.commit": False}
        )

        def done():
            self.assert_alive()
            parts = consumer.committed([TopicPartition(t, p) for t, p in ends], timeout=10)
            return all(tp.offset >= ends[(tp.topic, tp.partition)] for tp in parts)

        try:
            eventually(done, timeout_s, message=f"{group} committed {ends}")
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{self.logs()}") from None
        finally:
            consumer.close()

    @property
    def enrich_group(self) -> str:
        return group_id(self.settings)


def declare_dlq(settings: Settings, folder: Path) -> Settings:
    """Settings whose topic file also declares the enrichment DLQ (until topics.yaml does),
    so topic provisioning creates it and ``count_records`` can read it."""
    doc = yaml.safe_load(settings.topics_file.read_text(encoding="utf-8"))
    if DLQ_TOPIC not in doc["topics"]:
        doc["topics"][DLQ_TOPIC] = {
            "description": "Bitrix24 events the enrichment could not turn into records",
            "entity": "bitrix24_event",
            "role": "dlq",
            "stage": "enrich",
            "key": "as received",
            "value_format": "original bytes",
            "partitions": doc["topics"]["raw.bitrix24.event"]["partitions"],
            "configs": {"cleanup.policy": "delete", "retention.ms": "2592000000"},
        }
        doc["copartition_groups"]["bitrix24"].append(DLQ_TOPIC)
    path = folder / "topics.yaml"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    return settings.model_copy(update={"topics_file": path})


def enrich_settings(settings: Settings, folder: Path, **bitrix24) -> Settings:
    """Settings for one enrichment test: own emulator port and webhook, a fast portal, the
    DLQ declared."""
    port = free_port()
    settings = declare_dlq(settings, folder).model_copy(
        update={
            "ingress": settings.ingress.model_copy(update={"port": free_port()}),
            "embedded": settings.embedded.model_copy(update={"bitrix24_port": port}),
        }
    )
    return with_tokens(
        settings,
        **{
            "webhook_url": SecretStr(f"http://127.0.0.1:{port}/rest/1/{uuid.uuid4().hex}/"),
            "rate_per_s": 50.0,
            "timeout_s": 5.0,
            **bitrix24,
        },
    )


def record_json(msg) -> dict | None:
    """A consumed record's JSON value (None for a tombstone)."""
    value = msg.value()
    return None if value is None else json.loads(value)
