"""The OData poller as a process: scan every configured entity set, sleep, repeat, until
SIGTERM or SIGINT (``mmctl poll onec-odata``).

Known errors (1С unreachable or refusing, broker or database down) are logged — as errors
with ``alert`` when an operator must act — and the set is tried again next round, so a
fixed password or a restarted base heals without a restart. Anything else ends the process
(fail-stop): the durable cursor lets the next process resume the interrupted scan.
"""

from __future__ import annotations

import asyncio
import logging
import signal

from connectors.onec.odata.client import ODataClient
from connectors.onec.odata.poller import ODataPoller, resolve
from mmstream.db.engine import async_engine
from mmstream.errors import ConfigurationError, MMStreamError
from mmstream.kafka.admin import require_topics
from mmstream.kafka.producer import AckedProducer
from mmstream.metrics import UP
from mmstream.settings import Settings

log = logging.getLogger(__name__)


def run_poller(settings: Settings) -> None:
    """Poll until SIGTERM/SIGINT; returns after the current page is handled."""
    asyncio.run(_run(settings))


async def _run(settings: Settings) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    entity_sets = [resolve(name)[1] for name in settings.odata.entity_sets]
    topics = sorted({settings.topic(resolve(name)[0].topic) for name in entity_sets})
    # Producing to a missing topic is acknowledged and unreadable on the embedded broker.
    require_topics(settings, topics)
    if not settings.odata.enabled:
        log.warning("MM_ODATA__ENABLED is false; polling anyway because this command was run")
    producer = AckedProducer(settings.kafka, client_id="mm-odata-poller")
    engine = async_engine(settings, pool_size=2)
    client = ODataClient(settings.odata)
    poller = ODataPoller(settings, client, producer, engine)
    UP.labels("odata_poller").set(1)
    log.info("odata poller started", extra={"entity_sets": entity_sets, "topics": topics})
    try:
        while not stop.is_set():
            for name in entity_sets:
                if stop.is_set():
                    break
                await _scan_once(poller, name, stop)
            try:
                await asyncio.wait_for(stop.wait(), settings.odata.poll_interval_s)
            except TimeoutError:
                pass
    finally:
        UP.labels("odata_poller").set(0)
        await client.aclose()
        await engine.dispose()
        producer.close()
        log.info("odata poller stopped")


async def _scan_once(poller: ODataPoller, name: str, stop: asyncio.Event) -> None:
    try:
        await poller.scan(name, should_stop=stop.is_set)
    except ConfigurationError:
        raise
    except MMStreamError as exc:
        alert = getattr(exc, "alert", False)
        level = logging.ERROR if alert or not exc.retriable else logging.WARNING
        log.log(
            level,
            "odata scan failed; trying again next round",
            extra={
                "entity_set": name,
                "error_code": exc.code,
                "detail": str(exc),
                "retriable": exc.retriable,
                "alert": alert,
            },
        )
