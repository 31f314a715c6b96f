"""HTTP layer: blueprints parse requests, call one service and shape the response."""

from __future__ import annotations

import logging

from flask import Flask, jsonify, request
from werkzeug.exceptions import HTTPException

from tracker.web import api, site


def init_app(app: Flask) -> None:
    # Werkzeug's access log prints every client's IP address; the policy forbids logging
    # it before consent, so the request log is ours (see tracker.web.api) and carries none.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    app.register_blueprint(api.bp)
    app.register_blueprint(site.bp)

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):  # type: ignore[no-untyped-def]
        if request.path.startswith("/api/"):
            response = jsonify(error=exc.name.lower().replace(" ", "_"), reason=exc.description)
            response.status_code = exc.code or 500
            return response
        return exc
