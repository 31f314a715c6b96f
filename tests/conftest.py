"""Shared fixtures: real SQLite files, a real PostgreSQL cluster, the app and its client."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from flask_migrate import upgrade
from sqlalchemy import text

from tests.support.postgres import HINT, PostgresCluster, find_bindir
from tracker import create_app
from tracker.extensions import db

pytest_plugins = ["tests.support.dns", "tests.support.smtp"]

TESTS = Path(__file__).parent
GEOIP_DIR = TESTS / "data" / "geoip"
SITE = "https://amniotic.studio"
IN_CI = os.environ.get("CI") == "true"


def require(condition: bool, hint: str) -> None:
    """Skip a test needing an external part, except in CI where its absence is a failure."""
    if not condition:
        if IN_CI:
            pytest.fail(hint)
        pytest.skip(hint)


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresCluster]:
    bindir = find_bindir()
    require(bindir is not None, HINT)
    cluster = PostgresCluster(bindir)
    cluster.start()
    yield cluster
    cluster.destroy()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file with every table, created once and copied for each test."""
    path = tmp_path_factory.mktemp("template") / "tracker.sqlite3"
    create_schema(f"sqlite:///{path}", tmp_path_factory.mktemp("spool"))
    return path


@pytest.fixture(scope="session")
def postgres_url(postgres: PostgresCluster, tmp_path_factory: pytest.TempPathFactory) -> str:
    url = postgres.create_database("tracker_test")
    create_schema(url, tmp_path_factory.mktemp("spool"))
    return url


def create_schema(url: str, spool: Path, *, migrations: bool = False) -> None:
    """Create the tables from the models (tests only; tests/test_migrations.py checks that
    the Alembic migrations build exactly the same schema)."""
    app = create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": url, "SECRET_KEY": "x",
                      "TRACKER_SPOOL_DIR": str(spool)})
    with app.app_context():
        if migrations:
            upgrade()
        else:
            db.create_all()
        db.engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Each storage test runs on a fresh SQLite file and on a real PostgreSQL database."""
    if request.param == "sqlite":
        path = tmp_path / "tracker.sqlite3"
        shutil.copy(request.getfixturevalue("sqlite_template"), path)
        yield f"sqlite:///{path}"
        return
    url = request.getfixturevalue("postgres_url")
    yield url
    _truncate_all(url)


def _truncate_all(url: str) -> None:
    from sqlalchemy import create_engine

    engine = create_engine(url)
    tables = ", ".join(t.name for t in db.metadata.sorted_tables)
    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    engine.dispose()


def app_config(database_url: str, tmp_path: Path, **overrides: object) -> dict[str, object]:
    config: dict[str, object] = {
        "TESTING": True,
        "SECRET_KEY": "test-secret",
        "SQLALCHEMY_DATABASE_URI": database_url,
        "TRACKER_SPOOL_DIR": str(tmp_path / "spool"),
        "TRACKER_SITE_ORIGINS": [SITE],
        "TRACKER_GEOIP_ASN_DB": str(GEOIP_DIR / "GeoLite2-ASN-Test.mmdb"),
        "TRACKER_GEOIP_CITY_DB": str(GEOIP_DIR / "GeoIP2-City-Test.mmdb"),
        "TRACKER_DNS_TIMEOUT": 0.5,
    }
    config.update(overrides)
    return config


@pytest.fixture
def app(database_url: str, tmp_path: Path, dns_server) -> Iterator[Flask]:
    app = create_app(app_config(database_url, tmp_path,
                                TRACKER_DNS_SERVERS=[dns_server.address]))
    with app.app_context():
        yield app
        db.session.remove()
        db.engine.dispose()


class FreshRequestClient(FlaskClient):
    """Tests keep one app context open (for db.session), so requests share its `g`; in
    production each request gets a fresh one. Forget what a request cached there."""

    def open(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        from flask import g

        for name in list(g):
            g.pop(name)
        return super().open(*args, **kwargs)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    app.test_client_class = FreshRequestClient
    return app.test_client()
