"""The exchange protocol of 1С's "exchange with site" (CommerceML 2.x), as the site side.

1С is the client and drives the conversation on one URL with ``type`` and ``mode``:

``catalog``: ``checkauth`` (Basic) → ``init`` (``zip=…``, ``file_limit=…``) → ``file``
(chunks of one file are appended) → ``import`` per XML file → maybe ``complete``.
``sale``: ``checkauth`` → ``init`` → ``query`` (our orders for 1С) → ``success`` (1С got
them) → ``file`` (1С's changed orders, published as soon as the file is complete). A
document of that file whose Ид the middleware exported is 1С's answer to it: it is
published on ``raw.onec.exchange_result`` instead of as a customer order (orders.py).

Names travel between the files of an exchange: CommerceML 3.x sends one package as several
files (import.xml with the classifier, then offers.xml, prices.xml, rests.xml), each imported
by its own request, maybe on another bridge replica. What a file declares (property
dictionaries, price types, warehouses, groups) is kept in PostgreSQL with the session and
seeds the context of its later files; a "changes only" package starts from its catalog's
last full classifier (context.py). Over ``max_context_bytes`` nothing is kept.

Answers are plain text lines (``success``, ``failure\\n<reason>``); errors are raised as
CommerceMLError / ApiError and turned into ``failure`` answers by the route.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from typing import IO

from connectors.commerceml import auth, document, files
from connectors.commerceml import context as names
from connectors.commerceml.errors import (
    BadRequest,
    BrokenArchive,
    CommerceMLError,
    FileNotUploaded,
    IncompleteDocument,
    NoSession,
)
from connectors.commerceml.orders import QUERY_ENCODING, answer_record, orders_document
from connectors.commerceml.parser import Context
from connectors.commerceml.publishing import Target, publish_all
from connectors.commerceml.raw_records import Record
from connectors.commerceml.store import ExchangeStore, ExportQueue, Session, StoredFile
from mmstream.kafka.producer import AckedProducer
from mmstream.settings import Settings

log = logging.getLogger(__name__)
TEXT = "text/plain; charset=utf-8"


@dataclass(frozen=True)
class Reply:
    """An answer to 1С: the body and its media type."""

    body: bytes
    media_type: str = TEXT


def lines(*parts: str) -> Reply:
    """A text answer, one part per line."""
    return Reply("\n".join(parts).encode("utf-8"))


SUCCESS = lines("success")


@dataclass(frozen=True)
class _Known:
    """The names a file starts from: the session's as stored (JSON, to tell a change), the
    base its context is seeded with, and the catalog's stored names (None: not read)."""

    session: str
    base: Context
    catalog: Context | None


class Exchange:
    """One request's view of the exchange: the settings, the store and where to publish."""

    def __init__(
        self,
        settings: Settings,
        store: ExchangeStore,
        producer: AckedProducer,
        topics: dict[str, str],
        request_id: str,
    ) -> None:
        self.settings = settings
        self.cfg = settings.commerceml
        self.store = store
        self.producer = producer
        self.topics = topics
        self.request_id = request_id
        self.limits = files.ZipLimits.of(self.cfg)

    # -- authentication

    async def checkauth(self, authorization: str | None) -> Reply:
        """Basic credentials → a new session; answers ``success``, cookie name, cookie value."""
        principal = auth.check_basic(authorization, self.cfg)
        cookie = auth.new_cookie()
        session = await self.store.open_session(auth.cookie_hash(cookie), principal)
        log.info("commerceml session opened", extra={"session": session.id, "principal": principal})
        return lines("success", auth.COOKIE_NAME, cookie)

    async def session(self, cookie_header: str | None) -> Session:
        """The session of the request's cookie, or NoSession."""
        cookie = auth.cookie_from(cookie_header)
        if cookie is None:
            raise NoSession(f"no session cookie {auth.COOKIE_NAME}: start with mode=checkauth")
        session = await self.store.session(auth.cookie_hash(cookie))
        if session is None:
            raise NoSession("the session is unknown or expired: start again with mode=checkauth")
        return session

    # -- both directions

    async def init(self, session: Session) -> Reply:
        """A new exchange round: forget earlier uploads, tell 1С how to send files."""
        dropped = await self.store.clear_files(session)
        never_imported = [f.filename for f in dropped if not f.processed]
        if never_imported:
            log.warning(
                "commerceml files dropped without being imported",
                extra={"session": session.id, "files": never_imported},
            )
        return lines(
            f"zip={'yes' if self.cfg.use_zip else 'no'}", f"file_limit={self.cfg.file_limit_bytes}"
        )

    async def upload(self, session: Session, filename: str, data: bytes) -> StoredFile | None:
        """Append one chunk of an upload; None when the file is not worth keeping."""
        if not data:
            raise BadRequest(f"the upload of {filename} has no content")
        known = await self.store.file(session, filename)
        if not files.worth_keeping(filename, data[:64], known is not None and not known.processed):
            log.info(
                "commerceml upload acknowledged and dropped",
                extra={"session": session.id, "file": filename, "bytes": len(data)},
            )
            return None
        stored = await self.store.append(session, filename, data)
        log.info(
            "commerceml chunk stored",
            extra={
                "session": session.id,
                "file": filename,
                "chunk": stored.chunks,
                "size": stored.size,
            },
        )
        return stored

    async def import_file(self, session: Session, filename: str) -> Reply:
        """Validate the whole file, then publish every record it holds."""
        stored, spooled = await self._find(session, filename)
        with spooled:
            await self._publish_any(session, filename, spooled)
        await self.store.mark_processed(session, stored.filename)
        return SUCCESS

    # -- sale

    async def sale_file(self, session: Session, filename: str, data: bytes) -> Reply:
        """1С's changed orders: published as soon as the uploaded file is complete. A chunk
        that leaves the file visibly incomplete is only stored: the file is parsed once, when
        its end has come (files.looks_complete), not at every chunk."""
        stored = await self.upload(session, filename, data)
        if stored is None:
            return SUCCESS
        head, tail = await self.store.edges(session, stored, files.EDGE_BYTES)
        if not files.looks_complete(head, tail):
            log.info(
                "commerceml orders file incomplete, waiting for more chunks",
                extra={"session": session.id, "file": filename, "size": stored.size},
            )
            return SUCCESS
        with files.spool(self.cfg.work_dir) as spooled:
            await self._read_into(session, stored, spooled)
            try:
                await self._publish_any(session, filename, spooled, sale=True)
            except IncompleteDocument:
                log.info(
                    "commerceml orders file incomplete, waiting for more chunks",
                    extra={"session": session.id, "file": filename, "size": stored.size},
                )
                return SUCCESS
            except CommerceMLError:
                # Refused for good: a re-sent file under this name must start over.
                await self.store.mark_processed(session, filename)
                raise
        await self.store.mark_processed(session, filename)
        return SUCCESS

    async def sale_query(self, session: Session) -> Reply:
        """The orders recorded for 1С, as one CommerceML document (may hold none)."""
        pending = await self.store.pending_orders()
        body, broken = orders_document([o.document for o in pending], datetime.now())
        if broken:
            log.error(
                "orders for export that are not a <Документ> element were left out",
                extra={"ids": [pending[i].id for i in broken]},
            )
        left_out = set(broken)
        sent = [o for i, o in enumerate(pending) if i not in left_out]
        await self.store.mark_sent(session, sent)
        log.info("commerceml orders sent to 1С", extra={"session": session.id, "orders": len(sent)})
        return Reply(body, f"application/xml; charset={QUERY_ENCODING}")

    async def sale_success(self, session: Session) -> Reply:
        """1С confirms it took the orders of this session's ``query``."""
        count = await self.store.acknowledge_orders(session)
        log.info("commerceml orders acknowledged", extra={"session": session.id, "orders": count})
        return SUCCESS

    async def _answers(self, batch: list[Record]) -> list[Record]:
        """Orders whose Ид the middleware exported are 1С's answers to them: published on
        their own topic, naming the exported entity, instead of as customer orders."""
        ids = [r.key for r in batch if r.entity == "customer_order"]
        if not ids:
            return batch
        ours = await ExportQueue(self.store.engine).entities(ids)
        if not ours:
            return batch
        log.info(
            "commerceml answers to exported documents",
            extra={"documents": len(ours), "entities": dict(Counter(ours.values()))},
        )
        return [
            answer_record(r, ours[r.key]) if r.entity == "customer_order" and r.key in ours else r
            for r in batch
        ]

    # -- helpers

    async def _read_into(self, session: Session, stored: StoredFile, dest: IO[bytes]) -> None:
        async for chunk in self.store.chunks(session, stored):
            dest.write(chunk)
        dest.seek(0)

    async def _find(self, session: Session, filename: str) -> tuple[StoredFile, IO[bytes]]:
        """The file to import: uploaded as such, or a member of an uploaded archive."""
        stored = await self.store.file(session, filename)
        spooled = files.spool(self.cfg.work_dir)
        try:
            if stored is not None:
                await self._read_into(session, stored, spooled)
                return stored, spooled
            for archive in await self.store.archives(session):
                with files.spool(self.cfg.work_dir) as packed:
                    await self._read_into(session, archive, packed)
                    if await asyncio.to_thread(
                        files.extract, packed, filename, spooled, self.limits
                    ):
                        return archive, spooled
        except BaseException:
            spooled.close()
            raise
        spooled.close()
        raise FileNotUploaded(
            f"{filename} was not uploaded in this session (neither as a file nor inside an archive)"
        )

    async def _publish_any(
        self, session: Session, filename: str, spooled: IO[bytes], sale: bool = False
    ) -> None:
        """Publish an XML document, or every XML document of an archive — all of them checked
        before any is published. Members are read straight from the archive as streams
        (twice: check, then publish), never unpacked whole into memory."""
        if not files.is_zip(spooled):
            await self._publish(session, filename, spooled, sale=sale)
            return
        try:
            with files.open_archive(spooled, self.limits) as zf:
                members = files.xml_infos(zf)
                summaries = []
                for info in members:
                    with files.member(zf, info) as stream:
                        summaries.append(await asyncio.to_thread(document.check, stream))
                for info, summary in zip(members, summaries, strict=True):
                    with files.member(zf, info) as stream:
                        await self._publish(
                            session, files.member_name(info), stream, summary, sale=sale
                        )
        except BrokenArchive as exc:
            # A zip cannot tell "truncated" from "broken": to the sale direction it is
            # incomplete (more chunks may come), to an import a failure all the same.
            raise IncompleteDocument(str(exc)) from None

    async def _publish(
        self,
        session: Session,
        filename: str,
        stream: files.ByteStream,
        summary: document.Summary | None = None,
        sale: bool = False,
    ) -> Counter:
        if summary is None:
            summary = await asyncio.to_thread(document.check, stream)
        if sale and not summary.entries["order"]:
            # 1С answers "success" to our "success" either way: an orders file that gave no
            # order must at least be visible (an unknown layout would otherwise pass unseen).
            log.warning(
                "commerceml orders file holds no order (Документ)",
                extra={"session": session.id, "file": filename, **summary.as_log()},
            )
        stream.seek(0)
        target = Target(
            self.producer,
            self.topics,
            session.principal,
            self.request_id,
            self.settings.ingress.max_batch_records,
            self.settings.ingress.retry_after_s,
            route=self._answers,
        )
        # Orders resolve nothing through a classifier: only catalog files carry names.
        known = None if sale else await self._known_names(session, summary)
        ctx = None if known is None else names.names(known.base)
        counts = await publish_all(document.records(stream, ctx), target)
        log.info(
            "commerceml file imported",
            extra={
                "session": session.id,
                "file": filename,
                **summary.as_log(),
                "published": dict(counts),
            },
        )
        if known is not None and ctx is not None:
            await self._keep_names(session, filename, summary, known, ctx)
        return counts

    async def _known_names(self, session: Session, summary: document.Summary) -> _Known:
        """What earlier files declared: the session's names, over the catalog's last full
        classifier when the document holds only changes (it names what that one declared)."""
        session_names = names.from_json(await self.store.context(session))
        catalog_names = None
        if summary.catalog and (summary.changes_only or not summary.full_classifier):
            catalog_names = names.from_json(await self.store.catalog_context(summary.catalog))
        base = session_names
        if summary.changes_only and catalog_names is not None:
            base = names.merge(catalog_names, session_names)
        return _Known(names.dump(session_names), base, catalog_names)

    async def _keep_names(
        self,
        session: Session,
        filename: str,
        summary: document.Summary,
        known: _Known,
        ctx: Context,
    ) -> None:
        """Store the names after this file for the session's later files and, for a file of
        a known catalog, as that catalog's (a full classifier replaces what was kept;
        anything else adds to it). Over max_context_bytes nothing is stored: later files
        then resolve what they declare themselves, as a single file always does."""

        def serialize() -> tuple[str, str | None, bool]:
            data = names.dump(ctx)
            catalog_data = None
            if summary.catalog:
                kept = (
                    ctx
                    if summary.full_classifier or known.catalog is None
                    else names.merge(known.catalog, ctx)
                )
                catalog_data = names.dump(kept)
            same = data == known.session and (
                catalog_data is None
                or known.catalog is not None
                and catalog_data == names.dump(known.catalog)
            )
            return data, catalog_data, same

        # A big classifier's names are megabytes of JSON: not on the event loop.
        data, catalog_data, same = await asyncio.to_thread(serialize)
        if same:
            return
        cap = self.cfg.max_context_bytes
        size = max(len(data.encode()), len((catalog_data or "").encode()))
        if size > cap:
            log.warning(
                "commerceml names not kept for later files: over max_context_bytes",
                extra={
                    "session": session.id,
                    "file": filename,
                    "bytes": size,
                    "cap": cap,
                    "code": "context_too_large",
                },
            )
            return
        await self.store.put_context(session, data, summary.catalog or None, catalog_data)
        log.info(
            "commerceml names kept for later files",
            extra={
                "session": session.id,
                "file": filename,
                "bytes": len(data.encode()),
                "catalog": summary.catalog,
                "properties": len(ctx.properties),
                "price_types": len(ctx.price_types),
                "warehouses": len(ctx.warehouses),
            },
        )
