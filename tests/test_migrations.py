"""The Alembic migrations build exactly the schema the models describe, on both engines."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine

from tests.conftest import create_schema
from tracker.extensions import db


def test_migrations_match_models(database_url, tmp_path, request):
    engine_name = "sqlite" if database_url.startswith("sqlite") else "postgresql"
    if engine_name == "sqlite":
        url = f"sqlite:///{tmp_path / 'migrated.sqlite3'}"
    else:
        url = request.getfixturevalue("postgres").create_database("migrated")
    create_schema(url, tmp_path / "spool", migrations=True)
    engine = create_engine(url)
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        diff = compare_metadata(context, db.metadata)
    engine.dispose()
    assert diff == [], f"run `flask --app tracker db migrate`: the models changed: {diff}"
