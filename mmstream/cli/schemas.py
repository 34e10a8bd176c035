"""``mmctl schemas``: the committed Avro schemas of the normalized topics."""

from __future__ import annotations

import sys
from pathlib import Path

import click


@click.group()
def schemas() -> None:
    """The Avro schemas of the normalized topics (avro/*.avsc)."""


@schemas.command("check")
@click.option(
    "--dir",
    "schemas_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Schema folder (default: MM_SCHEMAS_DIR, the repository's avro/).",
)
@click.option(
    "--level",
    default="BACKWARD",
    show_default=True,
    type=click.Choice(
        [
            "BACKWARD",
            "BACKWARD_TRANSITIVE",
            "FORWARD",
            "FORWARD_TRANSITIVE",
            "FULL",
            "FULL_TRANSITIVE",
        ],
        case_sensitive=False,
    ),
    help="Compatibility level, as a schema registry applies it.",
)
@click.option(
    "--no-history",
    is_flag=True,
    help="Only compare the working tree with HEAD, not every committed step.",
)
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
        click.echo(
            f"{len(problems)} incompatible change(s) in {count} schemas ({level.upper()}). "
            f"Make the change compatible (new fields need a default), or publish a new "
            f"topic and record the break in {folder / ACCEPTED_FILE}.",
            err=True,
        )
        sys.exit(1)
    click.echo(f"{count} schemas are {level.upper()} compatible with their history")


# The levels a Confluent-compatible registry accepts (NONE turns the check off).
_LEVELS = [
    "BACKWARD",
    "BACKWARD_TRANSITIVE",
    "FORWARD",
    "FORWARD_TRANSITIVE",
    "FULL",
    "FULL_TRANSITIVE",
    "NONE",
]


@schemas.command("register")
@click.option(
    "--compatibility",
    default="BACKWARD_TRANSITIVE",
    show_default=True,
    type=click.Choice(_LEVELS, case_sensitive=False),
    help="Compatibility level set on each subject before its schema is registered. "
    "BACKWARD_TRANSITIVE: a compacted topic keeps records of every version, so "
    "a new schema must read all of them, not only the previous one.",
)
def schemas_register(compatibility: str) -> None:
    """Register the schema of every Avro topic in the topic file (subject <topic>-value) and
    set its compatibility level: the deploy step runs this before the workers start, so a
    refused change stops the release instead of a worker. Idempotent. Exit 1 on a refusal or
    an unreachable registry."""
    import json

    from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
    from confluent_kafka.schema_registry.error import SchemaRegistryError

    from mmstream.settings import get_settings
    from mmstream.topics import load_catalog

    settings = get_settings()
    if not settings.schema_registry_url:
        click.echo("no schema registry configured: set SCHEMA_REGISTRY_URL", err=True)
        sys.exit(1)
    level = compatibility.upper()
    client = SchemaRegistryClient(settings.registry_client_config())  # auth and TLS too
    catalog = load_catalog(settings.topics_file)
    done = 0
    for spec in catalog.topics.values():
        if spec.value_format != "avro":
            continue
        subject = f"{settings.topic(spec.name)}-value"
        path = settings.schemas_dir / (spec.schema or f"{spec.entity}.avsc")
        text = json.dumps(json.loads(path.read_text(encoding="utf-8")))
        try:
            # The level first: the registration below is then checked against it.
            client.set_compatibility(subject, level)
            schema_id = client.register_schema(subject, Schema(text, "AVRO"))
        except SchemaRegistryError as exc:
            click.echo(
                f"{subject}: the registry refused {path.name} "
                f"({exc.http_status_code}/{exc.error_code}): {exc.error_message}",
                err=True,
            )
            sys.exit(1)
        except Exception as exc:  # noqa: BLE001 — connection errors come from requests/httpx
            click.echo(
                f"schema registry unreachable at {settings.schema_registry_url}: {exc}", err=True
            )
            sys.exit(1)
        click.echo(f"{subject}\tid {schema_id}\t{level}")
        done += 1
    click.echo(f"{done} subjects registered, compatibility {level}")
