"""The ``batch`` method: up to :data:`MAX_BATCH` commands, each a ``method?query`` string
whose parameters may reference earlier results as ``$result[cmd][field]``."""

from __future__ import annotations

import re
import time
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qsl

from devstack.emulators.bitrix24.envelope import ApiError, Outcome
from devstack.emulators.bitrix24.php import php_array, php_parse

MAX_BATCH = 50

_RESULT_REF = re.compile(r"\$result\[([^\]]*)\]((?:\[[^\]]*\])*)")

#: Runs one method: (method, params, start time) -> its outcome.
Runner = Callable[[str, dict[str, Any], float], Awaitable[Outcome]]
#: Logs one call: (method, params, status, in_batch=...).
Recorder = Callable[..., None]


async def run_batch(params: dict[str, Any], run: Runner, record: Recorder) -> dict[str, Any]:
    """Run the commands of a ``batch`` call in order; the batch's ``result`` value."""
    cmd = params.get("cmd") or {}
    if isinstance(cmd, list):
        cmd = {str(i): c for i, c in enumerate(cmd)}
    if not isinstance(cmd, dict):
        raise ApiError(400, "INVALID_ARG_VALUE", "cmd must be an object of commands")
    if len(cmd) > MAX_BATCH:
        raise ApiError(400, "ERROR_BATCH_LENGTH_EXCEEDED", "Max batch length exceeded")
    halt = str(params.get("halt", 0)).strip().lower() in ("1", "true", "y")
    results: dict[str, Any] = {}
    errors: dict[str, Any] = {}
    totals: dict[str, Any] = {}
    nexts: dict[str, Any] = {}
    times: dict[str, Any] = {}
    for key, command in cmd.items():
        key = str(key)
        method, _, query = str(command).partition("?")
        method = method.strip().lower()
        sub_params = substitute(php_parse(parse_qsl(query, keep_blank_values=True)), results)
        start = time.time()
        if method == "batch":
            out = Outcome(
                405,
                error=ApiError(
                    405, "ERROR_BATCH_METHOD_NOT_ALLOWED", "Method is not allowed for batch usage"
                ),
            )
        else:
            out = await run(method, sub_params, start)
        record(method, sub_params, out.status, in_batch=True)
        if out.error is not None:
            errors[key] = out.error.body()
            if halt:
                break
            continue
        results[key] = out.result
        if out.total is not None:
            totals[key] = out.total
        if out.next is not None:
            nexts[key] = out.next
        times[key] = out.time
    return {
        "result": php_array(results),
        "result_error": php_array(errors),
        "result_total": php_array(totals),
        "result_next": php_array(nexts),
        "result_time": php_array(times),
    }


def substitute(value: Any, results: dict[str, Any]) -> Any:
    """Replace ``$result[cmd][field]`` references with earlier commands' results."""
    if isinstance(value, dict):
        return {k: substitute(v, results) for k, v in value.items()}
    if isinstance(value, list):
        return [substitute(v, results) for v in value]
    if not isinstance(value, str) or "$result[" not in value:
        return value
    whole = _RESULT_REF.fullmatch(value)
    if whole:
        return _resolve(whole, results)
    return _RESULT_REF.sub(lambda m: _scalar_text(_resolve(m, results)), value)


def _resolve(match: re.Match[str], results: dict[str, Any]) -> Any:
    node: Any = results.get(match.group(1))
    for part in re.findall(r"\[([^\]]*)\]", match.group(2)):
        if isinstance(node, dict):
            node = node.get(part)
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return None
    return node


def _scalar_text(value: Any) -> str:
    return "" if value is None else str(value)
