"""Apply the Alembic migrations programmatically (used by `mmctl migrate` and `mmctl run`)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config


def upgrade(url: str, migrations_dir: Path | None = None, revision: str = "head") -> None:
    """Bring the database at ``url`` (SQLAlchemy form) up to ``revision``.

    The Alembic configuration is built here rather than read from alembic.ini, so an
    installed package (a container image) only needs the migrations folder
    (``Settings.migrations_dir``).
    """
    from mmstream.settings import REPO_ROOT

    cfg = Config()
    cfg.set_main_option("script_location", str(migrations_dir or REPO_ROOT / "migrations"))
    cfg.attributes["url"] = url
    command.upgrade(cfg, revision)
