"""Amniotic tracker: consent-gated web analytics. `create_app` is the only entry point."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flask import Flask

from tracker import config
from tracker.extensions import csrf, db, limiter, login_manager, migrate

log = logging.getLogger("tracker")

MIGRATIONS_DIR = config.PROJECT_ROOT / "migrations"
STATIC_DIR = config.PROJECT_ROOT / "static"


def create_app(test_config: Mapping[str, Any] | None = None) -> Flask:
    """Build the application: settings, extensions, services, then blueprints."""
    app = Flask(__name__, instance_relative_config=True, static_folder=str(STATIC_DIR))
    app.config.update(config.load())
    if test_config:
        app.config.update(test_config)
    Path(app.instance_path).mkdir(parents=True, exist_ok=True)
    _derive_settings(app)

    db.init_app(app)
    migrate.init_app(app, db, directory=str(MIGRATIONS_DIR))
    login_manager.init_app(app)
    csrf.init_app(app)
    limiter.init_app(app)

    from tracker import cli, models, web  # noqa: F401  (models register their tables)
    from tracker.services import runtime

    runtime.init_app(app)
    web.init_app(app)
    cli.init_app(app)
    return app


def _derive_settings(app: Flask) -> None:
    cfg = app.config
    if not cfg["TRACKER_DATABASE_URL"]:
        cfg["TRACKER_DATABASE_URL"] = f"sqlite:///{Path(app.instance_path) / 'tracker.sqlite3'}"
    cfg.setdefault("SQLALCHEMY_DATABASE_URI", cfg["TRACKER_DATABASE_URL"])
    if not cfg["TRACKER_SPOOL_DIR"]:
        cfg["TRACKER_SPOOL_DIR"] = str(Path(app.instance_path) / "spool")
    if not cfg.get("SECRET_KEY"):
        if not cfg["TRACKER_SECRET_KEY"]:
            log.warning("TRACKER_SECRET_KEY is not set: using a random key; sessions and "
                        "signed links will not survive a restart")
        cfg["SECRET_KEY"] = cfg["TRACKER_SECRET_KEY"] or secrets.token_hex(32)
    # Flask's defaults are already in the config, so `setdefault` would never apply: fill in
    # only what neither Flask nor the caller set. Largest body any endpoint accepts (a
    # campaign's HTML and text); the public API sets a tighter cap per request.
    if cfg.get("MAX_CONTENT_LENGTH") is None:
        cfg["MAX_CONTENT_LENGTH"] = 2 * 1024 * 1024
    if cfg.get("SESSION_COOKIE_SAMESITE") is None:
        cfg["SESSION_COOKIE_SAMESITE"] = "Lax"
    cfg["SESSION_COOKIE_HTTPONLY"] = True
    cfg["SESSION_COOKIE_SECURE"] = cfg["SESSION_COOKIE_SECURE"] or cfg["TRACKER_SECURE_COOKIES"]
    cfg.setdefault("RATELIMIT_STORAGE_URI", cfg["TRACKER_RATELIMIT_STORAGE"])
    cfg.setdefault("RATELIMIT_HEADERS_ENABLED", True)
