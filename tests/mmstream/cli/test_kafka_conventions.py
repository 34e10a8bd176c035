"""``mmctl`` as an SRE used to the Kafka tools types it, against the harness's real broker:
kafka-consumer-groups.sh's argument lists and columns, CSV reset plans, --bootstrap-server
over the environment, exit statuses, the audit actor, and kafka-topics.sh's list/describe."""

from __future__ import annotations

import json
import subprocess
import sys

from confluent_kafka.admin import NewTopic
from sqlalchemy import create_engine, pool

from mmstream import audit
from mmstream.kafka.admin import admin_client, apply, existing_topics
from mmstream.kafka.lag import committed_offsets
from mmstream.topics import load_catalog
from tests.mmstream.cli.conftest import Mmctl
from tests.support.groups import commit, produce

UNREACHABLE = "127.0.0.1:1"


def _setup(settings, group):
    apply(settings, load_catalog(settings.topics_file))
    product, warehouse = settings.topic("raw.onec.product"), settings.topic("raw.onec.warehouse")
    produce(settings, product, {0: 10, 1: 5})
    produce(settings, warehouse, {0: 7})
    commit(
        settings, group, [product, warehouse], {(product, 0): 4, (product, 1): 5, (warehouse, 0): 2}
    )
    return product, warehouse


def _committed(settings, group):
    return {tp: c.offset for tp, c in committed_offsets(admin_client(settings), group).items()}


def _elsewhere(settings) -> Mmctl:
    """mmctl whose environment names an unreachable cluster: only --bootstrap-server works."""
    wrong = Mmctl(settings)
    wrong.env["MM_KAFKA__BOOTSTRAP_SERVERS"] = UNREACHABLE
    return wrong


def test_the_kafka_tools_argument_list_gives_the_same_plan(settings, unique):
    group = f"sink-{unique}"
    product, warehouse = _setup(settings, group)
    mmctl, server = _elsewhere(settings), settings.kafka.bootstrap_servers

    own = mmctl(
        "groups",
        "reset",
        "--bootstrap-server",
        server,
        "--group",
        group,
        "--all-topics",
        "--to-earliest",
        "--dry-run",
    )
    # kafka-consumer-groups.sh's exact argument list, after either spelling.
    kafka_args = [
        "--bootstrap-server",
        server,
        "--group",
        group,
        "--reset-offsets",
        "--all-topics",
        "--to-earliest",
        "--dry-run",
    ]
    as_kafka = mmctl("kafka-consumer-groups", *kafka_args)
    as_groups = mmctl("groups", *kafka_args)
    assert own.stdout == as_kafka.stdout == as_groups.stdout
    lines = own.stdout.split("\n")
    # kafka-consumer-groups.sh: a blank line, %-Ns columns, the last unpadded.
    width = max(15, len(group))
    twidth = max(15, len(product), len(warehouse))
    assert lines[0] == ""
    assert (
        lines[1]
        == f"{'GROUP'.ljust(width)} {'TOPIC'.ljust(twidth)} {'PARTITION'.ljust(10)} NEW-OFFSET"
    )
    rows = [ln.split() for ln in lines[2:] if ln]
    # --all-topics: the partitions the group committed on, each to its log start.
    assert rows == [
        [group, product, "0", "0"],
        [group, product, "1", "0"],
        [group, warehouse, "0", "0"],
    ]
    assert lines[2] == f"{group.ljust(width)} {product.ljust(twidth)} {'0'.ljust(10)} 0"
    assert "nothing changed" in own.stderr and f"on cluster {server}" not in own.stderr
    assert _committed(settings, group) == {(product, 0): 4, (product, 1): 5, (warehouse, 0): 2}

    # Repeated --topic: the same plan as --all-topics here, on every partition of both.
    both = mmctl.json(
        "groups",
        "reset",
        "--bootstrap-server",
        server,
        "--group",
        group,
        "--topic",
        "raw.onec.product",
        "--topic",
        f"{warehouse}:0",
        "--to-latest",
    )
    assert both["topics"] == sorted([product, warehouse])
    assert both["after"][f"{product}:0"] == 10 and both["after"][f"{warehouse}:0"] == 7
    assert len(both["rows"]) == 7  # 6 partitions of product, partition 0 of warehouse


def test_export_then_from_file_execute_is_audited_and_names_the_cluster(settings, unique, tmp_path):
    group = f"sink-{unique}"
    product, warehouse = _setup(settings, group)
    mmctl, server = _elsewhere(settings), settings.kafka.bootstrap_servers

    exported = mmctl(
        "groups",
        "reset",
        "--bootstrap-server",
        server,
        "--group",
        group,
        "--all-topics",
        "--shift-by",
        "-2",
        "--export",
    ).stdout
    assert exported.splitlines() == [f"{product},0,2", f"{product},1,3", f"{warehouse},0,0"]
    plan = tmp_path / "plan.csv"
    plan.write_text(exported.replace(f"{product},1,3", f"{product},1,99"))  # clamped to 5
    done = mmctl(
        "kafka-consumer-groups",
        "--bootstrap-server",
        server,
        "--group",
        group,
        "--reset-offsets",
        "--from-file",
        str(plan),
        "--execute",
    )
    assert f"on cluster {server} (PLAINTEXT)" in done.stderr
    assert done.stderr.index(f"on cluster {server}") < done.stderr.index("reset applied")
    assert _committed(settings, group) == {(product, 0): 2, (product, 1): 5, (warehouse, 0): 0}
    engine = create_engine(settings.require_database_url(), poolclass=pool.NullPool)
    try:
        [entry] = audit.recent_sync(engine, action="groups.reset")
    finally:
        engine.dispose()
    assert entry.actor == "sre-test" and entry.details["after"] == {
        f"{product}:0": 2,
        f"{product}:1": 5,
        f"{warehouse}:0": 0,
    }

    # --to-current: the committed offsets, the log end where there is none.
    current = mmctl.json(
        "groups",
        "reset",
        "--bootstrap-server",
        server,
        "--group",
        group,
        "--topic",
        product,
        "--to-current",
    )
    assert current["after"] == {"0": 2, "1": 5, "2": 0, "3": 0, "4": 0, "5": 0}


def test_describe_has_the_kafka_tools_columns(settings, unique):
    group = f"sink-{unique}"
    product, warehouse = _setup(settings, group)
    out = _elsewhere(settings)(
        "groups",
        "describe",
        "--group",
        group,
        "--bootstrap-server",
        settings.kafka.bootstrap_servers,
    )
    lines = out.stdout.split("\n")
    assert lines[0] == ""
    assert lines[1].split() == [
        "GROUP",
        "TOPIC",
        "PARTITION",
        "CURRENT-OFFSET",
        "LOG-END-OFFSET",
        "LAG",
        "CONSUMER-ID",
        "HOST",
        "CLIENT-ID",
    ]
    rows = {(r[1], r[2]): r for r in (ln.split() for ln in lines[2:] if ln)}
    assert rows[(product, "0")] == [group, product, "0", "4", "10", "6", "-", "-", "-"]
    assert rows[(warehouse, "0")][3:6] == ["2", "7", "5"]
    assert rows[(product, "2")][3:6] == ["-", "0", "-"]
    assert f"Consumer group '{group}' has no active members." in out.stderr
    assert "lag by entity: product 6, warehouse 5" in out.stderr


def test_exit_status_1_at_runtime_2_for_usage(settings, mmctl, unique):
    down = mmctl("groups", "list", "--bootstrap-server", UNREACHABLE, expect=1)
    assert "mmctl:" in down.stderr and "Traceback" not in down.stderr
    mmctl("groups", "reset", "--group", f"g-{unique}", "--to-earliest", expect=2)  # no scope
    mmctl(
        "groups",
        "reset",
        "--group",
        f"g-{unique}",
        "--all-topics",
        "--to-earliest",
        "--dry-run",
        "--execute",
        expect=2,
    )
    mmctl("groups", "--group", f"g-{unique}", "--to-earliest", expect=2)  # no action
    mmctl("groups", "--nonsense", expect=2)
    assert mmctl("--version").stdout.startswith("mmctl, version ")


def test_audited_changes_need_an_actor_outside_the_embedded_stack(settings, unique):
    group = f"sink-{unique}"
    product, _ = _setup(settings, group)
    anonymous = Mmctl(settings)
    del anonymous.env["MM_OPS__ACTOR"]
    refused = anonymous(
        "groups",
        "reset",
        "--group",
        group,
        "--topic",
        product,
        "--to-earliest",
        "--execute",
        expect=2,
    )
    assert "MM_OPS__ACTOR" in refused.stderr and "nothing was changed" in refused.stderr
    anonymous("groups", "delete", "--group", group, expect=2)
    assert _committed(settings, group)[(product, 0)] == 4
    # The embedded stack may default it (the OS user).
    anonymous.env["MM_PROFILE"] = "embedded"
    anonymous(
        "groups", "reset", "--group", group, "--topic", f"{product}:0", "--to-earliest", "--execute"
    )
    assert _committed(settings, group)[(product, 0)] == 0


def test_delete_offsets_is_refused_cleanly_where_the_broker_lacks_offset_delete(
    settings, mmctl, unique
):
    # Kafka 2.4+ serves OffsetDelete (KIP-496) and mmctl sends it there; the embedded broker
    # does not advertise it, so here the command must refuse without changing anything.
    group = f"sink-{unique}"
    product, warehouse = _setup(settings, group)
    out = mmctl(
        "kafka-consumer-groups",
        "--bootstrap-server",
        settings.kafka.bootstrap_servers,
        "--group",
        group,
        "--delete-offsets",
        "--topic",
        warehouse,
        expect=1,
    )
    assert "does not serve OffsetDelete" in out.stderr and "nothing was deleted" in out.stderr
    assert _committed(settings, group) == {(product, 0): 4, (product, 1): 5, (warehouse, 0): 2}
    engine = create_engine(settings.require_database_url(), poolclass=pool.NullPool)
    try:
        assert audit.recent_sync(engine, action="groups.delete_offsets") == []
    finally:
        engine.dispose()
    mmctl("groups", "delete-offsets", "--group", group, expect=2)  # no --topic: usage


def _config(settings, tmp_path, *args: str, env: dict[str, str] | None = None):
    base = Mmctl(settings).env
    proc = subprocess.run(
        [sys.executable, "-m", "mmstream.cli.main", *args, "config"],
        env={**base, **(env or {})},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    return proc


def test_a_stray_dotenv_is_not_read_unless_named(settings, tmp_path):
    (tmp_path / ".env").write_text("MM_KAFKA__TOPIC_PREFIX=from-dotenv.\n")
    env = {k: v for k, v in Mmctl(settings).env.items() if k != "MM_KAFKA__TOPIC_PREFIX"}
    plain = subprocess.run(
        [sys.executable, "-m", "mmstream.cli.main", "config"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert plain.returncode == 0, plain.stderr
    assert json.loads(plain.stdout)["kafka"]["topic_prefix"] == ""
    assert "./.env is not read" in plain.stderr
    named = subprocess.run(
        [sys.executable, "-m", "mmstream.cli.main", "--env-file", ".env", "config"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert json.loads(named.stdout)["kafka"]["topic_prefix"] == "from-dotenv."
    assert "settings from the environment and .env" in named.stderr


def test_command_config_maps_a_java_properties_file(settings, tmp_path):
    props = tmp_path / "client.properties"
    props.write_text(
        "# as for kafka-consumer-groups.sh --command-config\n"
        "security.protocol=SASL_PLAINTEXT\n"
        "sasl.mechanism=SCRAM-SHA-512\n"
        "sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required \\\n"
        '    username="alice" password="q7Vx-not-a-real-one-9zK";\n'
    )
    done = _config(
        settings,
        tmp_path,
        "--bootstrap-server",
        "kafka-a:9093,kafka-b:9093",
        "--command-config",
        str(props),
    )
    assert done.returncode == 0, done.stderr
    kafka = json.loads(done.stdout)["kafka"]
    assert (
        kafka["bootstrap_servers"],
        kafka["security_protocol"],
        kafka["sasl_mechanism"],
        kafka["sasl_username"],
    ) == ("kafka-a:9093,kafka-b:9093", "SASL_PLAINTEXT", "SCRAM-SHA-512", "alice")
    assert "q7Vx" not in done.stdout

    props.write_text(
        "security.protocol=SSL\nssl.truststore.location=/etc/kafka/truststore.jks\n"
        "ssl.truststore.password=changeit\n"
    )
    jks = _config(settings, tmp_path, "--command-config", str(props))
    assert jks.returncode == 2 and "JKS store" in jks.stderr and "PEM" in jks.stderr
    props.write_text("security.protocol=PLAINTEXT\nclient.id=sre\n")
    unknown = _config(settings, tmp_path, "--command-config", str(props))
    assert unknown.returncode == 2 and "client.id has no mmctl setting" in unknown.stderr


def test_topics_apply_grows_only_when_asked_and_list_describe(settings, mmctl):
    fewer, admin = settings.topic("raw.onec.warehouse"), admin_client(settings)
    admin.create_topics(
        [NewTopic(fewer, 2, 1, config={"cleanup.policy": "delete", "retention.ms": "604800000"})]
    )[fewer].result()
    kept = mmctl("topics", "apply")
    assert "--increase-partitions adds them" in kept.stderr and "out of order" not in kept.stderr
    assert "on cluster" in kept.stderr
    assert existing_topics(admin_client(settings))[fewer] == 2
    mmctl("topics", "apply", "--no-increase")  # the old spelling: accepted, the default now
    assert existing_topics(admin_client(settings))[fewer] == 2
    # Asked, it tries (after the warning); the embedded broker has no CreatePartitions, so
    # here that is a runtime error (exit 1). Apache Kafka grows the topic.
    grown = mmctl("topics", "apply", "--increase-partitions", expect=1)
    assert "out of order" in grown.stderr and "CreatePartitions" in grown.stderr

    product = settings.topic("raw.onec.product")
    assert product in mmctl("topics", "list").stdout.splitlines()
    lines = mmctl("topics", "describe", "--topic", "raw.onec.product").stdout.splitlines()
    head = lines[0].split("\t")
    assert head[0] == f"Topic: {product}" and head[1].startswith("TopicId: ")
    assert head[2:4] == ["PartitionCount: 6", "ReplicationFactor: 1"]
    assert head[4].startswith("Configs: ")
    assert lines[1].split("\t")[1:3] == [f"Topic: {product}", "Partition: 0"]
    assert len(lines) == 7
