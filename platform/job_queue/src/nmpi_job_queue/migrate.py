"""Schema migrations (Alembic): `nmpi-job-queue migrate`, once per deploy, never at start-up."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

from .settings import Settings

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(settings: Settings) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["settings"] = settings
    return config


def upgrade(settings: Settings, revision: str = "head") -> None:
    command.upgrade(alembic_config(settings), revision)


def current(settings: Settings) -> None:
    command.current(alembic_config(settings), verbose=False)


def autogenerate(settings: Settings, message: str) -> None:
    """Developers only: write a new revision from the difference between models and database."""
    command.revision(alembic_config(settings), message=message, autogenerate=True)
