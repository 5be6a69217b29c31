"""Schema migrations (Alembic): `nmpi-job-queue migrate`, once per deploy, never at start-up."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

from .settings import Settings

MIGRATIONS = Path(__file__).parent / "migrations"
# A migration may build an index over the whole jobs table: minutes on a large one. The
# service's statement and client timeouts (seconds, for requests) would cancel it.
MIGRATION_TIMEOUT_S = 3600.0


def alembic_config(settings: Settings) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["settings"] = settings.model_copy(
        update={
            "database_statement_timeout_ms": 0,  # none on the server side
            "database_command_timeout": MIGRATION_TIMEOUT_S,
        }
    )
    return config


def upgrade(settings: Settings, revision: str = "head") -> None:
    command.upgrade(alembic_config(settings), revision)


def current(settings: Settings) -> None:
    command.current(alembic_config(settings), verbose=False)


def autogenerate(settings: Settings, message: str) -> None:
    """Developers only: write a new revision from the difference between models and database."""
    command.revision(alembic_config(settings), message=message, autogenerate=True)
