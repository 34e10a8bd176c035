"""The courier flows of the demo: the emulators act the couriers' and the base's part.

Each round the demo does one of four things, in turn, at a modest pace (the Bitrix24 budget
is 2 calls/s, and the egress worker needs most of it):

* deliveries: 1С pushes a customer order with a delivery address; once its task appears in
  the Bitrix24 emulator the courier completes it there and the portal sends ONTASKUPDATE
  (form-encoded, as Bitrix24 does) to the bridge;
* instant orders and returns: a courier closes a deal as won in the instant-order or return
  funnel (with one goods row of a product master data brought to Bitrix24) and the portal
  sends ONCRMDEALUPDATE;
* cash: 1С holds a ПКО or РКО unposted and pushes it; the cash flow posts it through OData.

Steps follow tests/e2e/test_courier_flows.py. A failed step is logged and tried again in a
later round: the demo never stops the stack.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
import uuid
from datetime import datetime, timedelta
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

import httpx

from connectors.ingress.auth import mint_token
from mmstream.settings import Settings
from stages.normalize.derive_delivery_task import delivery_task_id

log = logging.getLogger(__name__)
ZERO = "00000000-0000-0000-0000-000000000000"
ORGANIZATION = "87fa6cc2-e901-11ea-8591-000c29b45b09"
_GIVE_UP_S = 600.0
STREETS = ("Тверская", "Арбат", "Покровка", "Мясницкая", "Сретенка", "Пятницкая")


def php_form(doc: dict) -> bytes:
    """A nested dict as PHP's http_build_query writes it (how the portal posts events)."""
    pairs: list[tuple[str, str]] = []

    def flatten(prefix: str, value) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                flatten(f"{prefix}[{k}]" if prefix else str(k), v)
        else:
            pairs.append((prefix, str(value)))

    flatten("", doc)
    return urlencode(pairs).encode()


def event_form(
    event: str, data: dict, *, member_id: str, token: str, domain: str, ts: int
) -> bytes:
    """An outbound event of the portal, fields in the portal's order."""
    return php_form(
        {
            "event": event,
            "event_handler_id": "1",
            "data": data,
            "ts": str(ts),
            "auth": {
                "domain": domain,
                "client_endpoint": f"http://{domain}/rest/",
                "member_id": member_id,
                "application_token": token,
            },
        }
    )


def document(ref: str, number: str, date: str, **extra) -> dict:
    """A 1С document as the base pushes it."""
    return {
        "Ref_Key": ref,
        "DataVersion": "AAAAAQ==",
        "DeletionMark": False,
        "Number": number,
        "Date": date,
        "Posted": True,
        "Организация_Key": ORGANIZATION,
        "Комментарий": "",
        "Ответственный_Key": ZERO,
        **extra,
    }


class CourierDemo:
    """Drives deliveries, instant orders, returns and cash documents through the stack."""

    def __init__(
        self, settings: Settings, bridge_url: str, *, period_s: float = 2.5, seed: int = 11
    ) -> None:
        self.bridge_url = bridge_url
        self.period_s = period_s
        bx = settings.bitrix24
        self.webhook = bx.webhook_url.get_secret_value()
        self.bx_url = f"http://127.0.0.1:{settings.embedded.bitrix24_port}"
        self.onec_url = f"http://127.0.0.1:{settings.embedded.onec_port}"
        self.member_id, token = next(iter(bx.application_tokens.items()), ("", None))
        self.app_token = token.get_secret_value() if token is not None else ""
        self.instant = bx.couriers.instant_order_category_id
        self.returns = bx.couriers.return_category_id
        self.tz = ZoneInfo(settings.onec.timezone)
        jwt = mint_token(settings.auth, subject="demo-1c", roles=["1c"], ttl_s=7 * 24 * 3600)
        self.headers = {"Authorization": f"Bearer {jwt}"}
        self.rng = random.Random(seed)  # noqa: S311 — a reproducible demo, not a secret
        self.company_ref = str(uuid.UUID(int=self.rng.getrandbits(128), version=4))
        self.pending: dict[str, float] = {}  # delivery task id -> when ordered, until completed
        self.n = 0

    async def run(self) -> None:
        async with httpx.AsyncClient(timeout=30) as client:
            await self._step(client, self._customer)
            while True:
                await asyncio.sleep(self.period_s)
                self.n += 1
                await self._step(client, self._complete_deliveries)
                step = (self._order, self._cash, self._instant_order, self._return)[self.n % 4]
                await self._step(client, step)

    async def _step(self, client: httpx.AsyncClient, step) -> None:
        try:
            await step(client)
        except (httpx.HTTPError, ValueError, KeyError) as exc:
            # Not a warning: the console carries the status line, and the next round retries.
            log.info("demo step %s failed (tried again later): %s", step.__name__, exc)

    def _now(self) -> str:
        return datetime.now(self.tz).replace(tzinfo=None, microsecond=0).isoformat()

    def _ref(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    async def _push(self, client: httpx.AsyncClient, object_name: str, record: dict) -> None:
        resp = await client.post(
            f"{self.bridge_url}/v1/onec/{object_name}", json=record, headers=self.headers
        )
        if resp.status_code != 202:
            raise ValueError(
                f"the bridge answered {resp.status_code} to {object_name}: {resp.text[:200]}"
            )

    async def _event(self, client: httpx.AsyncClient, event: str, data: dict) -> None:
        body = event_form(
            event,
            data,
            member_id=self.member_id,
            token=self.app_token,
            domain=self.bx_url.removeprefix("http://"),
            ts=int(datetime.now().timestamp()),
        )
        resp = await client.post(
            f"{self.bridge_url}/v1/bitrix24/events",
            content=body,
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        if resp.status_code != 200:
            raise ValueError(
                f"the bridge answered {resp.status_code} to {event}: {resp.text[:200]}"
            )

    async def _rest(self, client: httpx.AsyncClient, method: str, params: dict):
        # The couriers share the portal's budget with the egress worker: a refusal
        # (503 QUERY_LIMIT_EXCEEDED) is waited out, as a mobile app would.
        for _ in range(10):
            resp = await client.post(f"{self.webhook}{method}.json", json=params)
            if resp.status_code != 503:
                break
            await asyncio.sleep(1.0)
        resp.raise_for_status()
        return resp.json()["result"]

    # -- master data the courier flows need ----------------------------------------------
    async def _customer(self, client: httpx.AsyncClient) -> None:
        """The customer couriers sell to and take returns from (a 1С Контрагент -> a company)."""
        await self._push(
            client,
            "Контрагенты",
            {
                "Ref_Key": self.company_ref,
                "DataVersion": "AAAAAQ==",
                "DeletionMark": False,
                "Code": "000000001",
                "Description": "ООО Ромашка",
                "Parent_Key": ZERO,
                "IsFolder": False,
                "ИНН": "7701234567",
                "ЮрФизЛицо": "ЮрЛицо",
                "Покупатель": True,
            },
        )

    # -- deliveries ----------------------------------------------------------------------
    async def _order(self, client: httpx.AsyncClient) -> None:
        # A task that never reached the portal (its order dead-lettered) is given up on.
        now = time.monotonic()
        self.pending = {task: at for task, at in self.pending.items() if now - at < _GIVE_UP_S}
        if len(self.pending) >= 20:
            return  # the portal is behind: no more orders until couriers catch up
        ref = self._ref()
        number = f"УТ-{self.n:06d}"
        address = f"Москва, {self.rng.choice(STREETS)} {self.rng.randint(1, 40)}"
        await self._push(
            client,
            "ЗаказКлиента",
            document(
                ref,
                number,
                self._now(),
                ХозяйственнаяОперация="РеализацияКлиенту",
                Статус="КОтгрузке",
                Контрагент_Key=self.company_ref,
                Партнер_Key=ZERO,
                Склад_Key=ZERO,
                СуммаДокумента=self.rng.randint(5, 50) * 100,
                АдресДоставки=address,
                ЖелаемаяДатаОтгрузки=self._now(),
                Товары=[],
            ),
        )
        self.pending[str(delivery_task_id(uuid.UUID(ref)))] = now

    async def _complete_deliveries(self, client: httpx.AsyncClient) -> None:
        """The courier completes each delivery task that reached the portal."""
        if not self.pending:
            return
        tasks = (await client.get(f"{self.bx_url}/_emulator/entities/task")).json()
        for task in tasks:
            if task.get("xmlId") not in self.pending or str(task.get("status")) == "5":
                continue
            closed = datetime.now(self.tz).isoformat(timespec="seconds")
            (
                await client.put(
                    f"{self.bx_url}/_emulator/entities/task/{task['id']}",
                    json={"STATUS": "5", "CLOSED_DATE": closed},
                )
            ).raise_for_status()
            await self._event(
                client,
                "ONTASKUPDATE",
                {
                    "FIELDS_BEFORE": {"ID": str(task["id"])},
                    "FIELDS_AFTER": {"ID": str(task["id"])},
                    "IS_ACCESSIBLE_BEFORE": "N",
                    "IS_ACCESSIBLE_AFTER": "undefined",
                },
            )
            del self.pending[task["xmlId"]]

    # -- instant orders and returns --------------------------------------------------------
    async def _deal(self, client: httpx.AsyncClient, category: int | None, title: str) -> None:
        if category is None or not self.member_id:
            return
        companies = (await client.get(f"{self.bx_url}/_emulator/entities/company")).json()
        products = (await client.get(f"{self.bx_url}/_emulator/products")).json()
        if not companies or not products:
            return  # master data has not reached the portal yet
        product = self.rng.choice(products)
        price, quantity = self.rng.randint(1, 20) * 50, self.rng.randint(1, 3)
        # As a courier works: the deal is opened, its goods are added, then it is closed as
        # won. Only the won deal becomes a 1С document, so a deal whose goods did not get
        # through (the portal's budget is shared) stays open instead of reaching 1С — or
        # the Bitrix24 poller — without goods.
        deal = await self._rest(
            client,
            "crm.deal.add",
            {
                "fields": {
                    "TITLE": title,
                    "CATEGORY_ID": category,
                    "STAGE_ID": f"C{category}:NEW",
                    "COMPANY_ID": int(companies[0]["ID"]),
                    "OPPORTUNITY": f"{price * quantity}.00",
                    "CURRENCY_ID": "RUB",
                    "ASSIGNED_BY_ID": 1,
                    "COMMENTS": "демо: курьер",
                }
            },
        )
        await self._rest(
            client,
            "crm.deal.productrows.set",
            {
                "id": deal,
                "rows": [{"PRODUCT_ID": int(product["id"]), "PRICE": price, "QUANTITY": quantity}],
            },
        )
        await self._rest(
            client,
            "crm.deal.update",
            {"id": deal, "fields": {"STAGE_ID": f"C{category}:WON", "CLOSED": "Y"}},
        )
        await self._event(client, "ONCRMDEALUPDATE", {"FIELDS": {"ID": str(deal)}})

    async def _instant_order(self, client: httpx.AsyncClient) -> None:
        await self._deal(client, self.instant, f"Продажа у клиента {self.n}")

    async def _return(self, client: httpx.AsyncClient) -> None:
        await self._deal(client, self.returns, f"Возврат у клиента {self.n}")

    # -- cash ------------------------------------------------------------------------------
    async def _cash(self, client: httpx.AsyncClient) -> None:
        """1С holds a ПКО (or, every other time, an РКО) unposted and pushes it."""
        ref, amount = self._ref(), self.rng.randint(5, 50) * 100
        date = (
            (datetime.now(self.tz) - timedelta(minutes=1))
            .replace(tzinfo=None, microsecond=0)
            .isoformat()
        )
        if self.n // 4 % 2 == 0:
            name = "ПриходныйКассовыйОрдер"
            record = document(
                ref,
                f"0000-{self.n:06d}",
                date,
                Posted=False,
                ХозяйственнаяОперация="ПоступлениеОплатыОтКлиента",
                Касса_Key=ZERO,
                Контрагент_Key=self.company_ref,
                СуммаДокумента=amount,
                ПринятоОт="Курьеров Иван",
                Основание="Оплата заказа",
            )
        else:
            name = "РасходныйКассовыйОрдер"
            record = document(
                ref,
                f"0000-{self.n:06d}",
                date,
                Posted=False,
                ХозяйственнаяОперация="ВыдачаДенежныхСредствПодотчетнику",
                Касса_Key=ZERO,
                Контрагент_Key=ZERO,
                СуммаДокумента=amount,
                Выдать="Курьеров Иван",
                Основание="Под отчёт на доставку",
            )
        (
            await client.put(f"{self.onec_url}/_emulator/odata/Document_{name}", json=record)
        ).raise_for_status()
        await self._push(client, name, record)
