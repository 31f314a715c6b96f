"""The ceiling: a bare Flask app whose collector endpoint does nothing but answer 204."""

from __future__ import annotations

from flask import Flask


def create_app() -> Flask:
    """Same framework, same server, same route; no work at all."""
    app = Flask(__name__)

    @app.post("/api/collect")
    def collect() -> tuple[str, int]:
        return "", 204

    return app
