"""The declarative topic file: the real topics.yaml, validation, and effective specs."""

from __future__ import annotations

from pathlib import Path

import pytest

from mmstream.errors import ConfigurationError
from mmstream.settings import REPO_ROOT, Settings
from mmstream.topics import TopicSpec, effective_specs, load_catalog

TOPICS_FILE = REPO_ROOT / "topics.yaml"
# The raw records the entity sink cannot store go to dlq.normalize, shared by every entity.
PRODUCT_PATH = [
    "raw.onec.product",
    "norm.product",
    "egress.bitrix24.product",
    "dlq.egress.bitrix24.product",
]


def settings(**kafka) -> Settings:
    return Settings(_env_file=None, kafka=kafka)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "topics.yaml"
    path.write_text(text, encoding="utf-8")
    return path


# ------------------------------------------------------------------ the real file


def test_the_real_file_loads_and_declares_the_product_path():
    catalog = load_catalog(TOPICS_FILE)
    assert set(PRODUCT_PATH) <= set(catalog.topics)
    assert catalog.copartition_groups["product"] == PRODUCT_PATH
    for name, spec in catalog.topics.items():
        assert spec.name == name
        assert spec.partitions > 0 and spec.replication_factor > 0
    for name in PRODUCT_PATH:
        assert catalog[name].replication_factor == 3  # production default from the file
        assert catalog[name].configs["min.insync.replicas"] == "2"
        assert catalog[name].entity == "product"


def test_every_copartition_group_of_the_real_file_shares_one_partition_count():
    catalog = load_catalog(TOPICS_FILE)
    assert catalog.copartition_groups
    for group, members in catalog.copartition_groups.items():
        assert members, group
        counts = {catalog[m].partitions for m in members}
        assert len(counts) == 1, f"{group}: {counts}"


def test_the_real_file_keeps_per_topic_settings():
    catalog = load_catalog(TOPICS_FILE)
    norm = catalog["norm.product"]
    assert norm.value_format == "avro" and norm.schema == "product.avsc" and norm.role == "norm"
    assert norm.configs["cleanup.policy"] == "compact"
    assert (REPO_ROOT / "avro" / norm.schema).is_file()
    raw = catalog["raw.onec.product"]
    assert raw.configs["retention.ms"] == "604800000" and raw.schema is None
    # Config values are strings, as the admin API wants them.
    assert all(isinstance(v, str) for s in catalog.topics.values() for v in s.configs.values())


def test_an_undeclared_topic_name_raises_configuration_error():
    catalog = load_catalog(TOPICS_FILE)
    with pytest.raises(ConfigurationError, match="'norm.nothing' is not declared"):
        catalog["norm.nothing"]


# ------------------------------------------------------------------ invalid files


def test_mismatched_partitions_in_a_group_are_refused(tmp_path):
    path = write(
        tmp_path,
        """
copartition_groups:
  order: [raw.order, norm.order]
topics:
  raw.order: {partitions: 6}
  norm.order: {partitions: 12}
""",
    )
    with pytest.raises(ConfigurationError) as info:
        load_catalog(path)
    message = str(info.value)
    assert "'order'" in message and "[6, 12]" in message
    assert "same count" in message


def test_a_group_naming_an_undeclared_topic_is_refused(tmp_path):
    path = write(
        tmp_path,
        """
copartition_groups:
  order: [raw.order, norm.ordr]
topics:
  raw.order: {partitions: 6}
  norm.order: {partitions: 6}
""",
    )
    with pytest.raises(ConfigurationError) as info:
        load_catalog(path)
    assert "'order'" in str(info.value) and "norm.ordr" in str(info.value)
    assert "raw.order'" not in str(info.value).split("[", 1)[1]  # only the unknown one is named


def test_a_topic_without_partitions_is_refused(tmp_path):
    path = write(
        tmp_path,
        """
topics:
  raw.order:
    replication_factor: 1
""",
    )
    with pytest.raises(ConfigurationError) as info:
        load_catalog(path)
    assert "'raw.order'" in str(info.value) and "partition" in str(info.value)
    assert str(path) in str(info.value)


def test_a_missing_file_is_a_configuration_error(tmp_path):
    with pytest.raises(ConfigurationError, match="cannot read topic file"):
        load_catalog(tmp_path / "nope.yaml")


def test_broken_yaml_is_a_configuration_error(tmp_path):
    path = write(tmp_path, "topics: [unclosed\n")
    with pytest.raises(ConfigurationError, match="cannot read topic file"):
        load_catalog(path)


def test_defaults_and_per_topic_overrides_combine(tmp_path):
    path = write(
        tmp_path,
        """
defaults:
  replication_factor: 2
  configs: {min.insync.replicas: 2, cleanup.policy: delete}
topics:
  a: {partitions: 3}
  b:
    partitions: 3
    replication_factor: 5
    configs: {cleanup.policy: compact}
""",
    )
    catalog = load_catalog(path)
    assert catalog["a"] == TopicSpec(
        name="a",
        partitions=3,
        replication_factor=2,
        configs={"min.insync.replicas": "2", "cleanup.policy": "delete"},
    )
    assert catalog["b"].replication_factor == 5
    assert catalog["b"].configs == {"min.insync.replicas": "2", "cleanup.policy": "compact"}
    assert catalog.copartition_groups == {}


@pytest.mark.parametrize(
    "text",
    [
        "",
        "- raw.order\n",
        "topics:\n  raw.order:\n",
        "topics:\n  raw.order: {partitions: six}\n",
        "topics:\n  raw.order: {partitions: 0}\n",
        "topics:\n  raw.order: {partitions: -6}\n",
    ],
    ids=["empty", "list", "no-body", "non-numeric", "zero", "negative"],
)
def test_malformed_topic_files_raise_configuration_error(tmp_path, text):
    with pytest.raises(ConfigurationError):
        load_catalog(write(tmp_path, text))


# ------------------------------------------------------------------ effective specs


def test_effective_specs_prefix_names_and_apply_the_replication_override():
    catalog = load_catalog(TOPICS_FILE)
    specs = {
        s.name: s
        for s in effective_specs(settings(topic_prefix="tenant1.", replication_factor=1), catalog)
    }
    assert set(specs) == {f"tenant1.{n}" for n in catalog.topics}
    for name, declared in catalog.topics.items():
        spec = specs[f"tenant1.{name}"]
        assert spec.replication_factor == 1
        assert spec.partitions == declared.partitions
        # min.insync.replicas above the replication factor would refuse every acks=all write.
        assert _min_isr(spec) == 1
        assert {k: v for k, v in spec.configs.items() if k != "min.insync.replicas"} == {
            k: v for k, v in declared.configs.items() if k != "min.insync.replicas"
        }
        assert (spec.role, spec.entity, spec.schema) == (
            declared.role,
            declared.entity,
            declared.schema,
        )


def test_effective_specs_do_not_change_the_catalog():
    catalog = load_catalog(TOPICS_FILE)
    effective_specs(settings(topic_prefix="x.", replication_factor=1), catalog)
    assert catalog == load_catalog(TOPICS_FILE)


def _min_isr(spec: TopicSpec) -> int:
    return int(spec.configs.get("min.insync.replicas", "1"))


def test_without_override_the_declared_replication_is_kept():
    catalog = load_catalog(TOPICS_FILE)
    specs = effective_specs(settings(), catalog)
    assert len(specs) == len(catalog.topics)
    for spec in specs:
        declared = catalog[spec.name]  # no prefix by default
        assert spec.replication_factor == declared.replication_factor
        assert _min_isr(spec) == min(_min_isr(declared), declared.replication_factor)
    assert {s.name: s.replication_factor for s in specs}["norm.product"] == 3


def test_an_override_at_or_above_min_insync_keeps_it():
    catalog = load_catalog(TOPICS_FILE)
    for rf in (2, 5):
        for spec in effective_specs(settings(replication_factor=rf), catalog):
            declared = catalog[spec.name]
            assert spec.replication_factor == rf
            assert _min_isr(spec) == min(_min_isr(declared), rf)
        by_name = {s.name: s for s in effective_specs(settings(replication_factor=rf), catalog)}
        assert by_name["raw.onec.product"].configs["min.insync.replicas"] == "2"


def test_a_declared_replication_below_min_insync_is_lowered_too(tmp_path):
    path = write(
        tmp_path,
        """
defaults:
  configs: {min.insync.replicas: 3}
topics:
  a: {partitions: 1, replication_factor: 2}
  b: {partitions: 1}
""",
    )
    specs = {s.name: s for s in effective_specs(settings(), load_catalog(path))}
    assert specs["a"].replication_factor == 2 and specs["a"].configs["min.insync.replicas"] == "2"
    # default replication_factor of the file is 1 when not given
    assert specs["b"].replication_factor == 1 and specs["b"].configs["min.insync.replicas"] == "1"
