"""Shared pieces of the operator commands: the --output option and a progress counter.

Results go to stdout (JSON stays parseable); progress goes to stderr.
"""

from __future__ import annotations

import sys
import time

import click

output_option = click.option(
    "--output",
    "-o",
    type=click.Choice(["table", "json"]),
    default="table",
    show_default=True,
    help="Human table or JSON for scripts.",
)


class Counter:
    """``label: N`` on stderr, redrawn in place on a terminal, at most twice a second."""

    def __init__(self, label: str, total: int | None = None) -> None:
        self.label, self.total, self.count = label, total, 0
        self._tty = sys.stderr.isatty()
        self._shown = 0.0
        self._shown_count = 0

    def add(self, n: int = 1) -> None:
        """Count ``n`` more units of work."""
        self.count += n
        now = time.monotonic()
        if now - self._shown >= 0.5:
            self._shown = now
            self._write()

    def done(self) -> None:
        """Final line (only if progress was shown at all)."""
        if self._shown and self._shown_count != self.count:
            self._write()
        if self._shown:
            if self._tty:
                click.echo("", err=True)

    def _write(self) -> None:
        self._shown_count = self.count
        text = f"{self.label}: {self.count}" + (f"/{self.total}" if self.total else "")
        if self._tty:
            click.echo("\r" + text, err=True, nl=False)
        else:
            click.echo(text, err=True)
