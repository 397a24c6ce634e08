"""Alembic environment of the conference schema: `marugoto db upgrade` and `marugoto db revision` run it."""

from services.conference import models  # noqa: F401  (the tables a new revision is compared with)
from shared.migrations import run_environment

run_environment("conference")
