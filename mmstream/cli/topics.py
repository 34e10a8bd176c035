"""``mmctl topics``: the declarative topic file against the cluster (diff, apply), and the
cluster's topics as kafka-topics.sh lists and describes them."""

from __future__ import annotations

import sys

import click

from mmstream import log
from mmstream.cli.connection import announce, apply, connection_options
from mmstream.cli.output import output_option
from mmstream.settings import Settings, get_settings


def _settings() -> Settings:
    apply(click.get_current_context())
    settings = get_settings()
    log.setup("mmctl", settings.log_level, settings.log_format)
    return settings


@click.group()
def topics() -> None:
    """Topics: the topic file (topics.yaml) against the cluster, and the cluster's topics."""


@topics.command("diff")
@connection_options
@output_option
@click.option(
    "--exit-code", is_flag=True, help="Exit 1 when the cluster differs from the file (for CI)."
)
def topics_diff(output: str, exit_code: bool) -> None:
    """Compare the topic file with the cluster: missing topics, partition counts, configs,
    and undeclared topics in our namespaces. Changes nothing."""
    from mmstream.kafka.admin import KEY_ORDER_WARNING, admin_client, plan
    from mmstream.ops.render import as_json
    from mmstream.ops.topics import has_changes, plan_dict, plan_lines
    from mmstream.topics import load_catalog

    settings = _settings()
    p = plan(settings, load_catalog(settings.topics_file), admin_client(settings))
    click.echo(as_json(plan_dict(p)) if output == "json" else "\n".join(plan_lines(p)))
    if p.grow:
        click.echo(f"warning: {KEY_ORDER_WARNING}", err=True)
    if exit_code and has_changes(p):
        sys.exit(1)


@topics.command("apply")
@connection_options
@output_option
@click.option(
    "--increase-partitions",
    is_flag=True,
    help="Also add the partitions the file declares beyond the cluster's (moves keys "
    "to other partitions: read the warning). Off by default.",
)
@click.option(
    "--no-increase",
    is_flag=True,
    hidden=True,
    help="Accepted for old scripts: increases are off unless --increase-partitions.",
)
@click.option(
    "--allow-delete",
    is_flag=True,
    help="Also delete topics in our namespaces that the file does not declare.",
)
def topics_apply(
    output: str, increase_partitions: bool, no_increase: bool, allow_delete: bool
) -> None:
    """Make the cluster match the topic file: create missing topics and set drifted configs.
    Partition increases only with --increase-partitions (they change which partition a key
    maps to); never shrinks; never deletes without --allow-delete."""
    from mmstream.kafka.admin import KEY_ORDER_WARNING, admin_client, plan
    from mmstream.kafka.admin import apply as apply_plan
    from mmstream.ops.render import as_json
    from mmstream.ops.topics import plan_dict, plan_lines
    from mmstream.topics import load_catalog

    if increase_partitions and no_increase:
        raise click.UsageError("--increase-partitions and --no-increase contradict each other")
    settings = _settings()
    catalog, admin = load_catalog(settings.topics_file), admin_client(settings)
    grow = plan(settings, catalog, admin).grow
    if grow and increase_partitions:
        click.echo(f"warning: {KEY_ORDER_WARNING}", err=True)
    elif grow:
        click.echo(
            f"mmctl: {len(grow)} topic(s) declare more partitions than the cluster has; "
            "left as they are (--increase-partitions adds them)",
            err=True,
        )
    announce(settings, "applying the topic file")
    p = apply_plan(
        settings,
        catalog,
        admin,
        increase_partitions=increase_partitions,
        update_configs=True,
        allow_delete=allow_delete,
    )
    if output == "json":
        click.echo(
            as_json(
                {
                    **plan_dict(p),
                    "applied": True,
                    "deleted": allow_delete,
                    "partitions_increased": increase_partitions and bool(p.grow),
                }
            )
        )
    else:
        click.echo("\n".join(["applied:", *plan_lines(p, allow_delete=allow_delete)]))


@topics.command("list")
@connection_options
@output_option
@click.option("--exclude-internal", is_flag=True, help="Leave out internal (__-prefixed) topics.")
def topics_list(output: str, exclude_internal: bool) -> None:
    """Every topic of the cluster, one per line (as kafka-topics.sh --list)."""
    from mmstream.kafka.admin import admin_client
    from mmstream.ops.render import as_json
    from mmstream.ops.topics import list_names

    names = list_names(admin_client(_settings()), exclude_internal)
    click.echo(as_json(names) if output == "json" else "\n".join(names))


@topics.command("describe")
@connection_options
@output_option
@click.argument("names", nargs=-1)
@click.option(
    "--topic",
    "topic_opts",
    multiple=True,
    help="A topic (physical, or as named in the topic file); repeatable. None: all.",
)
@click.option("--exclude-internal", is_flag=True, help="Leave out internal (__-prefixed) topics.")
def topics_describe(
    output: str, names: tuple[str, ...], topic_opts: tuple[str, ...], exclude_internal: bool
) -> None:
    """Partitions, leaders, replicas, ISR and topic-level configs (as kafka-topics.sh
    --describe)."""
    from mmstream.kafka.admin import admin_client
    from mmstream.ops.render import as_json
    from mmstream.ops.reset import resolve_topic
    from mmstream.ops.topics import describe, describe_lines, list_names

    settings = _settings()
    admin = admin_client(settings)
    have = list_names(admin, exclude_internal)
    wanted = [*names, *topic_opts]
    counts = dict.fromkeys(have, 0)
    chosen = [resolve_topic(settings, n, counts) for n in wanted] if wanted else have
    found = describe(admin, chosen)
    click.echo(
        as_json([t.as_dict() for t in found])
        if output == "json"
        else "\n".join(describe_lines(found))
    )
