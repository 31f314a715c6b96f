"""Flask extensions, created unbound here and bound in the app factory."""

from __future__ import annotations

from flask import current_app, request
from flask_limiter import Limiter
from flask_login import LoginManager
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from flask_wtf import CSRFProtect
from sqlalchemy.orm import DeclarativeBase


class Base(DeclarativeBase):
    pass


def client_address() -> str:
    """The client IP for rate limits, trusting X-Forwarded-For only as configured."""
    from tracker.enrich import client_ip

    return client_ip(request.remote_addr, request.headers.get("X-Forwarded-For"),
                     current_app.config["TRACKER_TRUSTED_PROXIES"]) or "unknown"


db = SQLAlchemy(model_class=Base)
# Batch mode lets Alembic alter SQLite tables (it rebuilds them, as SQLite requires).
migrate = Migrate(render_as_batch=True, compare_type=True)
login_manager = LoginManager()
csrf = CSRFProtect()
limiter = Limiter(key_func=client_address)
