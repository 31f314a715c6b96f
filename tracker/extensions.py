"""Flask extensions, created unbound here and bound in the app factory."""

from __future__ import annotations

from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy.orm import DeclarativeBase


class Base(DeclarativeBase):
    pass


db = SQLAlchemy(model_class=Base)
# Batch mode lets Alembic alter SQLite tables (it rebuilds them, as SQLite requires).
migrate = Migrate(render_as_batch=True, compare_type=True)
