"""``mmctl schemas``: the committed Avro schemas of the normalized topics."""

from __future__ import annotations

import sys
from pathlib import Path

import click


@click.group()
def schemas() -> None:
    """The Avro schemas of the normalized topics (avro/*.avsc)."""


@schemas.command("check")
@click.option("--dir", "schemas_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Schema folder (default: MM_SCHEMAS_DIR, the repository's avro/).")
@click.option("--level", default="BACKWARD", show_default=True,
              type=click.Choice(["BACKWARD", "BACKWARD_TRANSITIVE", "FORWARD", "FORWARD_TRANSITIVE",
                                 "FULL", "FULL_TRANSITIVE"], case_sensitive=False),
              help="Compatibility level, as a schema registry applies it.")
@click.option("--no-history", is_flag=True,
              help="Only compare the working tree with HEAD, not every committed step.")
def schemas_check(schemas_dir: Path | None, level: str, no_history: bool) -> None:
    """Check that every schema still reads data written with its earlier versions (working tree
    against HEAD, and each committed version against the one before). Exit 1 on a break."""
    from mmstream.schema_history import ACCEPTED_FILE, check_dir
    from mmstream.settings import get_settings

    folder = schemas_dir or get_settings().schemas_dir
    problems = check_dir(folder, level.upper(), history=not no_history)
    for problem in problems:
        click.echo(str(problem))
    count = len(list(folder.glob("*.avsc")))
    if problems:
        click.echo(f"{len(problems)} incompatible change(s) in {count} schemas ({level.upper()}). "
                   f"Make the change compatible (new fields need a default), or publish a new "
                   f"topic and record the break in {folder / ACCEPTED_FILE}.", err=True)
        sys.exit(1)
    click.echo(f"{count} schemas are {level.upper()} compatible with their history")
