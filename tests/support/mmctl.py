"""`mmctl` in the test's own process, for the commands that return at once (a refusal,
`mmctl config`, `mmctl schemas check`): a child process would add ~2 s of imports to each
check and test nothing more. Commands that serve, and what only a process shows (signals,
the entry point), stay child processes."""

from __future__ import annotations

import logging
import os
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from mmstream import settings as settings_module
from mmstream.cli.main import cli


def run_mmctl(
    args: list[str], env: dict[str, str], cwd: Path, monkeypatch: pytest.MonkeyPatch
) -> subprocess.CompletedProcess:
    """``mmctl args`` run in this process (click's runner) with exactly ``env`` as the
    environment and ``cwd`` as the folder; exit status, stdout and stderr as a child's."""
    for name in set(os.environ) - set(env):
        monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(cwd)
    # mmctl sets the dotenv file, re-reads the process-wide settings and (a worker, before its
    # topic check) takes over the logging; all of it goes back afterwards.
    monkeypatch.setattr(settings_module, "ENV_FILE", settings_module.ENV_FILE)
    root = logging.getLogger()
    handlers = root.handlers[:]
    levels = {
        name: logger.level
        for name, logger in [("", root), *logging.root.manager.loggerDict.items()]
        if isinstance(logger, logging.Logger)
    }
    settings_module.get_settings.cache_clear()
    try:
        result = CliRunner().invoke(cli, args, catch_exceptions=False)
    finally:
        settings_module.get_settings.cache_clear()
        root.handlers[:] = handlers
        for name, level in levels.items():
            logging.getLogger(name or None).setLevel(level)
    return subprocess.CompletedProcess(args, result.exit_code, result.stdout, result.stderr)
