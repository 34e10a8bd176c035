"""An async Bitrix24 REST client for one portal: incoming webhook or OAuth application.

Each :meth:`Bitrix24Client.call` first consults the portal's circuit breaker (open:
:class:`~mmstream.errors.CircuitOpen`, nothing sent) and the method's time-limit block
(blocked: :class:`~connectors.bitrix24.errors.OperationTimeLimit` with ``retry_after``,
nothing sent), then waits for a slot of the portal's budget, makes ONE attempt and either
returns ``result`` or raises the error :func:`~connectors.bitrix24.errors.error_from_response`
chose. The only repeat it makes itself is after an OAuth token refresh (the first attempt
was refused before executing). Retrying is the caller's job (``mmstream.retry``): only
the caller knows whether repeating a write is safe.

The budget and the breaker are shared by every client of the portal on one event loop (one
worker): see :func:`~connectors.bitrix24.ratelimit.shared_budget`. Answers steer them:
``QUERY_LIMIT_EXCEEDED`` slows the budget down, ``OPERATION_TIME_LIMIT`` blocks that method
until ``operating_reset_at``, ``OVERLOAD_LIMIT`` opens the circuit at once, transport errors
and 5xx count toward opening it.

The webhook URL and the OAuth tokens are secrets: they appear in no log line and no
exception text (messages name the method only, and httpx's request log is redacted).
"""

from __future__ import annotations

import logging
import re
import time
from typing import Any
from urllib.parse import urlsplit

import httpx

from connectors.bitrix24.batch import BatchPacker, Command, Failed
from connectors.bitrix24.errors import (
    AuthFailed,
    Bitrix24Error,
    ExpiredToken,
    OperationTimeLimit,
    OverloadLimit,
    QueryLimitExceeded,
    TransportError,
    error_from_response,
)
from connectors.bitrix24.oauth import (
    MemoryTokenStore,
    OAuthSession,
    PgTokenStore,
    TokenStore,
    request_refresh,
)
from connectors.bitrix24.ratelimit import PortalBudget, shared_budget
from mmstream.circuit import CircuitBreaker, Verdict, shared_breaker
from mmstream.errors import ConfigurationError
from mmstream.kafka.groups import group_size
from mmstream.metrics import EGRESS_ERRORS, RATE_LIMIT_WAIT
from mmstream.ratelimit import LeakyBucket
from mmstream.settings import Bitrix24Settings, Settings
from mmstream.trace.context import batch_scope, current_ids
from mmstream.trace.transport import TracingTransport, record_command

logger = logging.getLogger(__name__)

#: The target label of this client's metrics and circuit.
TARGET = "bitrix24"

# A method name goes into the URL path: anything beyond this alphabet could rewrite the URL.
_METHOD_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_]*(\.[A-Za-z0-9_]+)*$")

_MASK = "/<webhook>/"
# OAuth secrets travel as query parameters to the token endpoint (as documented).
_SECRET_PARAM = re.compile(r"((?:client_secret|refresh_token|access_token|auth)=)[^&\s\"']+")


class _Redact(logging.Filter):
    """Masks the webhook path and OAuth secrets in httpx's "HTTP Request: …" INFO lines."""

    def __init__(self, secret_path: str | None) -> None:
        super().__init__()
        self._secret_path = secret_path

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = _SECRET_PARAM.sub(r"\1***", message)
        if self._secret_path and self._secret_path in masked:
            masked = masked.replace(self._secret_path, _MASK)
        if masked != message:
            record.msg, record.args = masked, None
        return True


def circuit_verdict(exc: BaseException | None) -> Verdict:
    """How a Bitrix24 outcome counts for the portal's circuit breaker."""
    if exc is None:
        return Verdict.SUCCESS
    if isinstance(exc, OverloadLimit):
        return Verdict.TRIP  # a manual block for everyone: no hammering
    if isinstance(exc, (QueryLimitExceeded, OperationTimeLimit, ExpiredToken)):
        # Rate and time limits are the budget's business; an expired token is ours.
        return Verdict.NEUTRAL
    if isinstance(exc, Bitrix24Error):
        return Verdict.FAILURE if exc.retriable else Verdict.SUCCESS
    return Verdict.NEUTRAL  # our own bug, not the portal's health


class Bitrix24Client:
    """Calls Bitrix24 REST methods of one portal, one attempt per call."""

    def __init__(
        self,
        settings: Bitrix24Settings,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        token_store: TokenStore | None = None,
        budget: PortalBudget | None = None,
        breaker: CircuitBreaker | None = None,
        pack: bool = False,
    ) -> None:
        self._settings = settings
        # Concurrent single calls packed into `batch` calls (see call()); created on first use
        # because its futures belong to the running loop.
        self._pack = pack
        self._packer: BatchPacker | None = None
        # command text -> (event id, request id) of the changes waiting on it in a batch.
        self._origins: dict[str, list[tuple[str, str]]] = {}
        self._http = httpx.AsyncClient(
            # X-Request-Id / traceparent on every call, each attempt in the integration log.
            transport=TracingTransport(transport, TARGET),
            timeout=httpx.Timeout(settings.timeout_s),
            headers={"Accept": "application/json"},
            # A redirect would be followed to wherever it points, secret included.
            follow_redirects=False,
        )
        self._oauth: OAuthSession | None = None
        if settings.auth_mode == "oauth":
            self._base = _oauth_base(settings.oauth.portal)
            secret_path = None
            if token_store is None:
                logger.warning(
                    "bitrix24 oauth tokens kept in memory only: a restart falls "
                    "back to the configured pair, which a refresh has spent"
                )
                token_store = MemoryTokenStore()
            oauth = settings.oauth
            if not oauth.client_id or not oauth.client_secret.get_secret_value():
                raise ConfigurationError(
                    "bitrix24.auth_mode=oauth needs bitrix24.oauth.client_id "
                    "and bitrix24.oauth.client_secret"
                )
            self._oauth = OAuthSession(
                oauth,
                token_store,
                urlsplit(self._base).netloc,
                fetch=lambda refresh: request_refresh(self._http, oauth, refresh),
            )
        else:
            self._base = _webhook_base(settings.webhook_url.get_secret_value())
            # The path (/rest/USER_ID/CODE/) holds the secret; the host stays readable.
            secret_path = urlsplit(self._base).path
        #: The portal's host: the key of its budget, breaker and stored tokens.
        self.portal = urlsplit(self._base).netloc
        self._budget = budget or shared_budget(
            TARGET,
            settings.rate_per_s,
            settings.burst,
            scope=self.portal,
            workers=settings.budget_workers or 1,
            backoff_factor=settings.budget_backoff_factor,
            recovery_per_s=settings.budget_recovery_per_s,
        )
        circuit = settings.circuit
        self._breaker = breaker or shared_breaker(
            TARGET,
            scope=self.portal,
            failure_threshold=circuit.failure_threshold,
            cool_down_s=circuit.cool_down_s,
            max_cool_down_s=circuit.max_cool_down_s,
            verdict=circuit_verdict,
        )
        self._redactor = _Redact(secret_path)
        logging.getLogger("httpx").addFilter(self._redactor)

    @classmethod
    def for_worker(
        cls,
        settings: Settings,
        *,
        group: str | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        pack: bool = False,
    ) -> Bitrix24Client:
        """The client a worker process uses: OAuth tokens in PostgreSQL (when a database is
        configured) and, unless ``bitrix24.budget_workers`` is set, the budget re-split by
        the member count of consumer group ``group``. Call it on the worker's event loop."""
        bx = settings.bitrix24
        store: TokenStore | None = None
        if bx.auth_mode == "oauth" and settings.database_url is not None:
            from mmstream.db.engine import async_engine

            store = PgTokenStore(async_engine(settings, pool_size=1))
        client = cls(bx, transport=transport, token_store=store, pack=pack)
        if group and bx.budget_workers is None:
            try:
                client.budget.follow_workers(lambda: group_size(settings.kafka, group))
            except RuntimeError:
                logger.warning("no event loop: the bitrix24 budget is not split across workers")
        return client

    @property
    def budget(self) -> PortalBudget:
        """The portal's request budget (shared by the clients of this worker)."""
        return self._budget

    @property
    def bucket(self) -> LeakyBucket:
        """The leaky bucket behind the budget."""
        return self._budget.bucket

    @property
    def breaker(self) -> CircuitBreaker:
        """The portal's circuit breaker (shared by the clients of this worker)."""
        return self._breaker

    @property
    def oauth(self) -> OAuthSession | None:
        """The OAuth token session (None in webhook mode)."""
        return self._oauth

    async def call(self, method: str, params: dict[str, Any] | None = None) -> Any:
        """Call ``method`` once with ``params``; return ``result`` or raise a Bitrix24Error
        (or CircuitOpen while the portal's circuit is open).

        A client made with ``pack=True`` (the egress worker's) sends concurrent calls as
        commands of one ``batch`` call (up to 50 for one request of the portal's budget);
        each caller still gets its own command's result or error. Params then travel as a
        query string, as Bitrix24 reads batch commands.
        """
        if self._pack and method != "batch":
            if not _METHOD_RE.match(method):
                raise ValueError(f"not a Bitrix24 method name: {method!r}")
            if self._packer is None:
                self._packer = BatchPacker(_Unpacked(self), linger_s=self._settings.pack_linger_s)
            command = Command(method, params or {})
            # The batch request carries this change's ids (see _Unpacked.call); the command
            # is logged on its own with them (the integration log, per change).
            origins = self._origins.setdefault(command.text(), [])
            origin = current_ids()
            origins.append(origin)
            started = time.perf_counter()
            try:
                outcome = await self._packer.submit(command)
            finally:
                origins.remove(origin)
                if not origins:
                    self._origins.pop(command.text(), None)
            if isinstance(outcome, Failed):
                record_command(
                    TARGET,
                    method,
                    f"{self._base}{method}",
                    command.params,
                    started=started,
                    result=None,
                    error=outcome.error,
                )
                raise outcome.error
            record_command(
                TARGET,
                method,
                f"{self._base}{method}",
                command.params,
                started=started,
                result=outcome.result,
                error=None,
            )
            return outcome.result
        return await self.call_unpacked(method, params)

    async def call_unpacked(self, method: str, params: dict[str, Any] | None = None) -> Any:
        """:meth:`call` as one HTTP request of its own, never packed."""
        if not _METHOD_RE.match(method):
            raise ValueError(f"not a Bitrix24 method name: {method!r}")
        self._refuse_early(method)
        params = params or {}
        started = await self._acquire()
        # The wait may have been long: the guard checks the circuit again.
        with self._breaker.guard():
            if self._oauth is None:
                return await self._send(method, params, None, started)
            token = await self._oauth.access_token()
            try:
                return await self._send(method, params, token, started)
            except ExpiredToken:
                fresh = await self._oauth.refreshed(token)
            except AuthFailed as exc:
                if exc.error.lower() != "invalid_token":
                    raise
                # Another worker's refresh rotated the pair, which revokes our token.
                reloaded = await self._oauth.reloaded(token)
                if reloaded is None:
                    raise
                fresh = reloaded
            # The first attempt was refused before executing: repeating it is safe.
            return await self._send(method, params, fresh, await self._acquire())

    def packed_origins(self, params: dict[str, Any] | None) -> list[tuple[str, str]]:
        """(event id, request id) of the changes whose commands a ``batch`` call carries."""
        return [
            o
            for text in ((params or {}).get("cmd") or {}).values()
            for o in self._origins.get(text, [])[:1]
        ]

    def observe(self, method: str, err: Bitrix24Error) -> None:
        """Let an error about ``method`` steer the budget (also for errors of single
        commands inside a ``batch``, which arrive with HTTP 200)."""
        if isinstance(err, QueryLimitExceeded):
            self._budget.on_query_limit()
        elif isinstance(err, OperationTimeLimit):
            self._budget.block_method(method, err.retry_after)

    def _refuse_early(self, method: str) -> None:
        self._breaker.check()
        blocked = self._budget.blocked_for(method)
        if blocked > 0:
            err = OperationTimeLimit(
                None,
                "OPERATION_TIME_LIMIT",
                "method blocked until its time budget resets",
                method=method,
            )
            err.retry_after = blocked
            raise err

    async def _acquire(self) -> float:
        queued = time.monotonic()
        await self._budget.acquire()
        started = time.monotonic()
        RATE_LIMIT_WAIT.labels(TARGET).observe(started - queued)
        return started

    async def _send(
        self, method: str, params: dict[str, Any], token: str | None, started: float
    ) -> Any:
        body_params = params if token is None else {**params, "auth": token}
        try:
            response = await self._http.post(f"{self._base}{method}.json", json=body_params)
        except (
            httpx.TimeoutException,
            httpx.NetworkError,
            httpx.RemoteProtocolError,
            httpx.ProxyError,
        ) as exc:
            # `from None`: httpx exceptions carry the request (and so the secret URL).
            raise TransportError(
                None, type(exc).__name__, "no answer from Bitrix24", method=method
            ) from None
        except httpx.HTTPError as exc:
            raise Bitrix24Error(
                None, type(exc).__name__, "request could not be sent", method=method
            ) from None
        elapsed = time.monotonic() - started

        body = _decode(response)
        if (
            response.is_success
            and isinstance(body, dict)
            and "result" in body
            and not body.get("error")
        ):
            logger.debug(
                "bitrix24 call",
                extra={
                    "method": method,
                    "status": response.status_code,
                    "duration_s": round(elapsed, 3),
                },
            )
            return body["result"]

        err = error_from_response(response.status_code, body, method=method)
        EGRESS_ERRORS.labels(TARGET, err.code).inc()
        self.observe(method, err)
        log = logger.error if err.alert else logger.warning
        log(
            "bitrix24 call failed",
            extra={
                "method": method,
                "status": response.status_code,
                "error": err.error,
                "error_code": err.code,
                "retriable": err.retriable,
                "duration_s": round(elapsed, 3),
            },
        )
        raise err

    async def aclose(self) -> None:
        if self._packer is not None:
            await self._packer.aclose()
        """Close the HTTP connections and detach the log redactor."""
        await self._http.aclose()
        logging.getLogger("httpx").removeFilter(self._redactor)

    async def __aenter__(self) -> Bitrix24Client:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


def _webhook_base(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc or not parts.path.strip("/"):
        # Deliberately not echoing the URL: it holds the webhook secret.
        raise ConfigurationError(
            "bitrix24.webhook_url must be an http(s) URL like https://PORTAL/rest/USER_ID/CODE/"
        )
    return url if url.endswith("/") else url + "/"


def _oauth_base(portal: str) -> str:
    portal = portal.strip()
    if portal and "://" not in portal:
        portal = "https://" + portal
    parts = urlsplit(portal)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigurationError(
            "bitrix24.oauth.portal must be the portal's domain "
            "(mastermobile.bitrix24.ru) or base URL"
        )
    return f"{parts.scheme}://{parts.netloc}/rest/"


def _decode(response: httpx.Response) -> dict[str, Any] | str | None:
    if not response.content:
        return None
    try:
        decoded = response.json()
    except ValueError:
        decoded = None
    if isinstance(decoded, dict):
        return decoded
    # Proxies and maintenance pages answer HTML; keep the text for the error description.
    return response.text


class _Unpacked:
    """The client as the packer sees it: its ``batch`` calls go out directly."""

    def __init__(self, client: Bitrix24Client) -> None:
        self._client = client

    async def call(self, method: str, params: dict[str, Any] | None = None) -> Any:
        # The packer's task inherited the context of whichever delivery started it: the
        # batch request carries the ids of the changes whose commands it holds instead.
        origins = self._client.packed_origins(params)
        with batch_scope([e for e, _ in origins], [r for _, r in origins]):
            return await self._client.call_unpacked(method, params)

    def observe(self, method: str, err: Bitrix24Error) -> None:
        self._client.observe(method, err)
