"""Schema evolution of the committed Avro schemas (``avro/*.avsc``), checked against git.

Analysts' consumers hold old schemas for years, and a production registry with BACKWARD
compatibility refuses a new version that cannot read the data already on the topic — at the
sink's start, in production. This catches it at review time instead: every schema file in the
working tree must read data written with its version at ``HEAD``, and every committed version
must read data written with the version before it. The decision is the registry's own
(:func:`mmstream.avro_compat.check`), so the two cannot disagree.

Git history cannot be rewritten, so a break that was meant (its consumers moved to a new
topic, the registry subject was reset) is acknowledged in ``avro/accepted-breaks.txt``: one
line per break, ``<file> <fingerprint> <why>``, the fingerprint of the new version as the
check prints it. Nothing else silences the check.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mmstream import avro_compat as compat
from mmstream.errors import ConfigurationError

DEFAULT_LEVEL = compat.DEFAULT_LEVEL
ACCEPTED_FILE = "accepted-breaks.txt"


class HistoryUnavailable(ConfigurationError):
    """There is no git history to compare with (not a git checkout, e.g. a source tarball, or
    no git binary). Run the check in a clone."""

    code = "schema_history_unavailable"


@dataclass(frozen=True)
class Version:
    """One version of a schema file: where it comes from and its JSON value."""

    label: str  # a commit id (short) or "working tree"
    schema: Any


@dataclass(frozen=True)
class Problem:
    """A schema version that cannot follow the one before it under the level."""

    path: str
    new: str
    old: str
    reasons: tuple[str, ...]
    fingerprint: str  # of the new version: what accepted-breaks.txt names

    def __str__(self) -> str:
        lines = [
            f"{self.path}: {self.new} (fingerprint {self.fingerprint}) is not compatible "
            f"with {self.old}:"
        ]
        return "\n".join(lines + [f"  - {r}" for r in self.reasons])


def fingerprint(schema: Any) -> str:
    """A short, formatting-independent digest of a schema's JSON value."""
    text = json.dumps(schema, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def accepted_breaks(schemas_dir: Path) -> set[tuple[str, str]]:
    """(file name, fingerprint) pairs acknowledged in ``accepted-breaks.txt``; ``#`` comments."""
    path = schemas_dir / ACCEPTED_FILE
    if not path.exists():
        return set()
    pairs = set()
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        words = line.partition("#")[0].split()
        if not words:
            continue
        if len(words) < 3:
            raise ConfigurationError(f"{path}:{number}: expected '<file> <fingerprint> <why>'")
        pairs.add((words[0], words[1]))
    return pairs


def _git(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(
            ["git", "-C", str(root), *args], capture_output=True, text=True, timeout=60
        )
    except FileNotFoundError:
        raise HistoryUnavailable("git is not installed") from None


def repo_root(path: Path) -> Path:
    """The top of the git work tree holding ``path``; HistoryUnavailable outside one."""
    out = _git(path, "rev-parse", "--show-toplevel")
    if out.returncode != 0:
        raise HistoryUnavailable(f"{path} is not inside a git checkout: {out.stderr.strip()}")
    toplevel = Path(out.stdout.strip())
    if not (_git(toplevel, "rev-parse", "--verify", "-q", "HEAD").returncode == 0):
        raise HistoryUnavailable(f"{toplevel} has no commits yet")
    return toplevel


def _load(text: str, where: str) -> Any:
    try:
        return json.loads(text)
    except ValueError as exc:
        raise ConfigurationError(f"{where} is not valid JSON: {exc}") from None


def committed_versions(root: Path, rel: str) -> list[Version]:
    """Every committed version of ``rel`` (a path relative to ``root``), oldest first.

    Commits that deleted the file are left out: a schema re-added later is compared with the
    last version that existed.
    """
    log = _git(root, "log", "--format=%H", "--", rel)
    if log.returncode != 0:
        raise HistoryUnavailable(f"git log failed: {log.stderr.strip()}")
    versions = []
    for commit in reversed(log.stdout.split()):
        shown = _git(root, "show", f"{commit}:{rel}")
        if shown.returncode == 0:
            versions.append(Version(commit[:12], _load(shown.stdout, f"{rel} at {commit[:12]}")))
    return versions


def _compare(level: str, rel: str, new: Version, old: Version) -> Problem | None:
    reasons = compat.check(level, new.schema, [old.schema], labels=[old.label])
    if not reasons:
        return None
    return Problem(rel, new.label, old.label, tuple(reasons), fingerprint(new.schema))


def check_file(
    root: Path, path: Path, level: str = DEFAULT_LEVEL, *, history: bool = True
) -> list[Problem]:
    """Problems of one schema file: the working-tree file against its ``HEAD`` version and,
    with ``history``, each committed version against the one before it. A file not yet
    committed has nothing to be compatible with."""
    rel = path.resolve().relative_to(root.resolve()).as_posix()
    versions = committed_versions(root, rel)
    problems: list[Problem] = []
    if history:
        for old, new in zip(versions, versions[1:], strict=False):
            if (problem := _compare(level, rel, new, old)) is not None:
                problems.append(problem)
    head = _git(root, "show", f"HEAD:{rel}")
    if path.exists() and head.returncode == 0:
        current = Version("working tree", _load(path.read_text(encoding="utf-8"), rel))
        base = Version("HEAD", _load(head.stdout, f"{rel} at HEAD"))
        if (problem := _compare(level, rel, current, base)) is not None:
            problems.append(problem)
    return problems


def check_dir(
    schemas_dir: Path, level: str = DEFAULT_LEVEL, *, history: bool = True
) -> list[Problem]:
    """Problems of every ``*.avsc`` in ``schemas_dir`` (see :func:`check_file`), less the
    breaks acknowledged in ``accepted-breaks.txt``."""
    root = repo_root(schemas_dir)
    accepted = accepted_breaks(schemas_dir)
    problems: list[Problem] = []
    for path in sorted(schemas_dir.glob("*.avsc")):
        problems += [
            p
            for p in check_file(root, path, level, history=history)
            if (path.name, p.fingerprint) not in accepted
        ]
    return problems
