"""No log call may pass a reserved LogRecord attribute in ``extra``.

``logging.Logger.makeRecord`` raises ``KeyError: "Attempt to overwrite 'filename' in
LogRecord"`` for such a key — but only when the level is enabled, so code logging at INFO
works in tests run at WARNING and fails in production. The same names given to
``mmstream.log.bind`` would silently overwrite the record's own attributes. This test reads
the source (ast) of every project module, so a new offender fails here whatever the level.
"""

from __future__ import annotations

import ast
import logging
import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# What makeRecord refuses: every attribute a LogRecord has, plus the two the formatter adds
# (and taskName, added in Python 3.12, so the code stays portable).
RESERVED = frozenset(logging.LogRecord("n", logging.INFO, "p", 1, "m", None, None).__dict__) | {
    "message",
    "asctime",
    "taskName",
}
_SKIP = {".venv", "node_modules", ".git", ".data", "build", "dist"}


def _sources() -> list[Path]:
    found = []
    for folder, dirs, names in os.walk(REPO):
        dirs[:] = [d for d in dirs if d not in _SKIP]  # pruned, not walked and filtered
        found += [Path(folder, n) for n in names if n.endswith(".py")]
    # This file passes a reserved key on purpose (to show makeRecord's refusal).
    return [p for p in found if p != Path(__file__).resolve()]


def _literal_keys(node: ast.expr) -> list[tuple[str, int]]:
    """Constant keys of a dict display or of ``dict(key=...)``."""
    if isinstance(node, ast.Dict):
        return [
            (k.value, k.lineno)
            for k in node.keys
            if isinstance(k, ast.Constant) and isinstance(k.value, str)
        ]
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "dict":
        return [(kw.arg, kw.value.lineno) for kw in node.keywords if kw.arg]
    return []


def reserved_extra_keys(source: str) -> list[tuple[int, str]]:
    """(line, key) of every reserved key passed as ``extra={...}`` to any call, or as a
    keyword of a ``bind(...)`` call (the log context)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
        for kw in node.keywords:
            if kw.arg == "extra":
                found += [(line, key) for key, line in _literal_keys(kw.value) if key in RESERVED]
            elif name == "bind" and kw.arg in RESERVED:
                found.append((kw.value.lineno, kw.arg))
    return found


def test_the_scan_finds_what_makerecord_refuses():
    sample = (
        'log.info("x", extra={"filename": f, "ok": 1})\n'
        'log.warning("y", extra=dict(module=m))\n'
        'with mmlog.bind(name="n"):\n    pass\n'
    )
    assert reserved_extra_keys(sample) == [(1, "filename"), (2, "module"), (3, "name")]
    # The premise: such a record fails only once the level is enabled.
    logger = logging.getLogger("tests.extra_keys")
    try:
        logger.makeRecord(
            logger.name, logging.INFO, "f", 1, "m", None, None, extra={"filename": "x"}
        )
    except KeyError as exc:
        assert "filename" in str(exc)
    else:
        raise AssertionError("makeRecord accepted a reserved extra key")


def test_no_log_call_passes_a_reserved_extra_key():
    sources = _sources()
    assert any(p.name == "exchange.py" for p in sources)  # the scan does see the project
    offenders = [
        f"{p.relative_to(REPO)}:{line}: {key!r}"
        for p in sources
        for line, key in reserved_extra_keys(p.read_text(encoding="utf-8"))
    ]
    assert offenders == [], "reserved LogRecord attributes passed as log extra:\n" + "\n".join(
        offenders
    )
