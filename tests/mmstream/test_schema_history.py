"""Schema evolution: the committed Avro schemas stay BACKWARD compatible with their git history,
and the check catches the changes that would break a consumer (in throwaway git repositories)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from mmstream.schema_history import (
    ACCEPTED_FILE,
    HistoryUnavailable,
    check_dir,
    fingerprint,
)
from tests.support.mmctl import run_mmctl

ROOT = Path(__file__).resolve().parents[2]


def test_committed_schemas_stay_backward_compatible_with_their_history():
    try:
        problems = check_dir(ROOT / "avro")
    except HistoryUnavailable as exc:
        pytest.skip(f"no git history to compare the schemas with: {exc}")
    assert not problems, "\n".join(map(str, problems)) + (
        "\nNew fields need a default; a meant break needs a new topic and a line in "
        f"avro/{ACCEPTED_FILE}"
    )


# -- the check itself, on throwaway repositories ---------------------------------------------


class Repo:
    """A git repository in a temporary folder with an ``avro/`` folder of schemas."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.avro = path / "avro"
        self.avro.mkdir()
        self.git("init", "-q")

    def git(self, *args: str) -> str:
        env = {
            **os.environ,
            "GIT_AUTHOR_NAME": "t",
            "GIT_AUTHOR_EMAIL": "t@example.invalid",
            "GIT_COMMITTER_NAME": "t",
            "GIT_COMMITTER_EMAIL": "t@example.invalid",
            "GIT_CONFIG_GLOBAL": os.devnull,
            "GIT_CONFIG_NOSYSTEM": "1",
        }
        return subprocess.run(
            ["git", "-C", str(self.path), *args],
            env=env,
            check=True,
            capture_output=True,
            text=True,
        ).stdout

    def write(self, schema: dict, name: str = "thing.avsc") -> None:
        (self.avro / name).write_text(json.dumps(schema, indent=2), encoding="utf-8")

    def commit(self, schema: dict, name: str = "thing.avsc") -> str:
        self.write(schema, name)
        self.git("add", "-A")
        self.git("commit", "-q", "-m", f"{name} changed")
        return self.git("rev-parse", "HEAD").strip()


@pytest.fixture
def repo(tmp_path) -> Repo:
    return Repo(tmp_path)


def record(*fields: dict, name: str = "Thing") -> dict:
    return {
        "type": "record",
        "name": name,
        "namespace": "ru.mastermobile.stream.norm",
        "fields": [{"name": "id", "type": "string"}, *fields],
    }


CODE = {"name": "code", "type": "string", "default": ""}
STATUS = {"name": "status", "type": {"type": "enum", "name": "Status", "symbols": ["NEW", "DONE"]}}
LINE = {
    "name": "lines",
    "type": {
        "type": "array",
        "items": {
            "type": "record",
            "name": "Line",
            "fields": [{"name": "quantity", "type": "long"}],
        },
    },
    "default": [],
}


def test_added_field_without_default_is_caught(repo):
    repo.commit(record(CODE))
    repo.write(record(CODE, {"name": "warehouse", "type": "string"}))
    (problem,) = check_dir(repo.avro)
    assert (problem.path, problem.new, problem.old) == ("avro/thing.avsc", "working tree", "HEAD")
    assert "warehouse" in problem.reasons[0] and "no default" in problem.reasons[0]


def test_changed_field_type_is_caught(repo):
    repo.commit(record(CODE))
    repo.write(record({"name": "code", "type": "long", "default": 0}))
    (problem,) = check_dir(repo.avro)
    assert (
        "/fields/code" in problem.reasons[0]
        and "long cannot read writer type string" in problem.reasons[0]
    )


def test_removed_enum_symbol_is_caught(repo):
    repo.commit(record(STATUS))
    repo.write(record({**STATUS, "type": {**STATUS["type"], "symbols": ["NEW"]}}))
    (problem,) = check_dir(repo.avro)
    assert "lacks writer symbols ['DONE']" in problem.reasons[0]


def test_changed_type_inside_nested_line_records_is_caught(repo):
    repo.commit(record(LINE))
    line = LINE["type"]["items"]
    repo.write(
        record(
            {
                **LINE,
                "type": {
                    "type": "array",
                    "items": {**line, "fields": [{"name": "quantity", "type": "boolean"}]},
                },
            }
        )
    )
    (problem,) = check_dir(repo.avro)
    assert "/fields/lines/items/fields/quantity" in problem.reasons[0]


def test_renamed_record_is_caught(repo):
    repo.commit(record(CODE))
    repo.write(record(CODE, name="Other"))
    assert check_dir(repo.avro)


def test_compatible_changes_pass(repo):
    repo.commit(record(CODE, STATUS, {"name": "quantity", "type": "int"}))
    # New optional field, a field dropped, an enum symbol added, int promoted to long, docs.
    repo.write(
        record(
            {**STATUS, "type": {**STATUS["type"], "symbols": ["NEW", "DONE", "LOST"]}},
            {"name": "quantity", "type": "long", "doc": "how many"},
            {"name": "note", "type": ["null", "string"], "default": None},
        )
    )
    assert check_dir(repo.avro) == []


def test_schema_not_yet_committed_has_nothing_to_break(repo):
    repo.commit(record(CODE))
    repo.write(record({"name": "anything", "type": "long"}), "new.avsc")
    assert check_dir(repo.avro) == []


def test_incompatible_step_in_the_history_is_reported_with_its_commits(repo):
    first = repo.commit(record(CODE))
    second = repo.commit(record(CODE, {"name": "warehouse", "type": "string"}))
    repo.commit(record(CODE, {"name": "warehouse", "type": "string"}, {**CODE, "name": "more"}))
    (problem,) = check_dir(repo.avro)
    assert (problem.new, problem.old) == (second[:12], first[:12])
    assert check_dir(repo.avro, history=False) == []  # the working tree alone is fine


def test_a_file_deleted_and_added_again_is_compared_with_its_last_version(repo):
    repo.commit(record(CODE))
    (repo.avro / "thing.avsc").unlink()
    repo.commit(record(CODE), "other.avsc")
    repo.commit(record({"name": "code", "type": "long"}))
    (problem,) = check_dir(repo.avro)
    assert "/fields/code" in problem.reasons[0]


def test_a_break_recorded_in_accepted_breaks_is_not_reported(repo):
    repo.commit(record(CODE))
    broken = record(CODE, {"name": "warehouse", "type": "string"})
    repo.write(broken)
    (problem,) = check_dir(repo.avro)
    assert problem.fingerprint == fingerprint(broken)
    (repo.avro / ACCEPTED_FILE).write_text(
        f"# meant breaks\nthing.avsc {problem.fingerprint} consumers moved to norm.thing.v2\n",
        "utf-8",
    )
    assert check_dir(repo.avro) == []
    (repo.avro / ACCEPTED_FILE).write_text(
        "other.avsc " + problem.fingerprint + " wrong file\n", "utf-8"
    )
    assert len(check_dir(repo.avro)) == 1


def test_stricter_levels_apply(repo):
    repo.commit(record({"name": "code", "type": "string"}))
    repo.write(record())  # 'code' dropped: new readers skip it, old readers have no default
    assert check_dir(repo.avro, "BACKWARD") == []
    (problem,) = check_dir(repo.avro, "FORWARD")
    assert "HEAD cannot read the new schema" in problem.reasons[0]


def test_without_git_history_the_check_is_unavailable(tmp_path):
    (tmp_path / "avro").mkdir()
    with pytest.raises(HistoryUnavailable, match="not inside a git checkout"):
        check_dir(tmp_path / "avro")


def test_mmctl_schemas_check_exits_1_and_names_the_break(repo, monkeypatch):
    repo.commit(record(CODE))
    args = ["schemas", "check", "--dir", str(repo.avro)]
    ok = run_mmctl(args, dict(os.environ), Path.cwd(), monkeypatch)
    assert ok.returncode == 0 and "1 schemas are BACKWARD compatible" in ok.stdout
    repo.write(record(CODE, {"name": "warehouse", "type": "string"}))
    bad = run_mmctl(args, dict(os.environ), Path.cwd(), monkeypatch)
    assert bad.returncode == 1
    assert "avro/thing.avsc: working tree" in bad.stdout and "'warehouse'" in bad.stdout
    assert "accepted-breaks.txt" in bad.stderr
