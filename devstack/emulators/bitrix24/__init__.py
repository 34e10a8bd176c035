"""An in-memory emulator of the Bitrix24 REST API: products, CRM entities and tasks.

Serves ``{webhook_path}{method}.json`` like a portal with an incoming webhook: JSON,
form-encoded (PHP-style ``fields[NAME]=…``) and GET query parameters; the real envelope
(``result``, ``time``, ``total``, ``next``) and real error shapes and statuses; the
per-portal leaky bucket (HTTP 503 ``QUERY_LIMIT_EXCEEDED`` before executing anything);
``catalog.product.*`` (camelCase) and legacy ``crm.product.*`` (UPPER_CASE, string values,
errors with an EMPTY code) over one product store; and ``batch`` (always HTTP 200, PHP
array encoding: maps keyed ``0..n-1`` come out as JSON lists, empty maps as ``[]``).

It also keeps CRM entities (``crm.deal|lead|contact|company.get/list``: UPPER_CASE,
string values), smart-process items (``crm.item.get/list``: camelCase) and tasks
(``tasks.task.get/list``: UPPER_CASE in, camelCase out), with the portal's version fields
(``DATE_MODIFY``, ``updatedTime``, ``changedDate``) for cursor polling.

Admin endpoints (no auth: a loopback test tool) inject faults and inspect what arrived:
``POST/GET/DELETE /_emulator/faults``, ``GET /_emulator/calls``, ``GET /_emulator/products``,
``POST /_emulator/reset``, ``GET/PUT /_emulator/limits``, OAuth (``/oauth/token/``, REST at
``/rest/{method}.json`` with ``auth``; ``POST /_emulator/oauth/tokens`` issues a pair,
``POST /_emulator/oauth/expire`` expires every access token, ``GET /_emulator/oauth``
counts refreshes); seed entities as a user would edit
them with ``PUT/DELETE /_emulator/entities/{entity}/{id}`` (entity: deal, lead, contact,
company, task, product, ``item:<entityTypeId>``) and read what changed when at
``GET /_emulator/changes``; plus ``GET /health``.

All state lives in the app returned by :func:`create_app`, so tests can run several.

Modules: ``app`` (HTTP wiring and admin endpoints), ``portal`` (one portal's state and
call execution), ``envelope`` (answer and error shapes, the ``time`` block), ``faults``,
``store`` (products), ``query`` (filter/order/paging of list methods), ``catalog`` and
``crm`` (the two product method families), ``entities`` and ``records`` (CRM entities,
items and tasks, and their read methods), ``batch``, ``php`` (PHP array encoding).
"""

from devstack.emulators.bitrix24.app import LimitsSpec, create_app
from devstack.emulators.bitrix24.batch import MAX_BATCH
from devstack.emulators.bitrix24.faults import Fault, FaultSpec
from devstack.emulators.bitrix24.query import PAGE_SIZE

__all__ = ["Fault", "FaultSpec", "LimitsSpec", "PAGE_SIZE", "MAX_BATCH", "create_app"]
