"""Apply the Alembic migrations programmatically (used by `mmctl migrate` and `mmctl run`)."""

from __future__ import annotations

from alembic import command
from alembic.config import Config

from mmstream.settings import REPO_ROOT


def upgrade(url: str, revision: str = "head") -> None:
    """Bring the database at ``url`` (SQLAlchemy form) up to ``revision``."""
    cfg = Config(str(REPO_ROOT / "alembic.ini"))
    cfg.attributes["url"] = url
    command.upgrade(cfg, revision)
