"""HTTP layer: blueprints parse requests, call one service and shape the response."""

from __future__ import annotations

import logging

from flask import Flask, g, jsonify, request
from werkzeug.exceptions import HTTPException

from tracker.extensions import csrf
from tracker.web import api, auth, middleware, site


def init_app(app: Flask) -> None:
    # Werkzeug's access log prints every client's IP address; the policy forbids logging
    # it before consent, so the request log is ours (see tracker.web.api) and carries none.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    middleware.init_app(app)
    # The public API is called cross-site by the banner with no session: nothing to forge.
    csrf.exempt(api.bp)
    app.register_blueprint(api.bp)
    app.register_blueprint(auth.bp)
    app.register_blueprint(site.bp)

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):  # type: ignore[no-untyped-def]
        if request.path.startswith("/api/"):
            response = jsonify(error=exc.name.lower().replace(" ", "_"), reason=exc.description,
                               request_id=g.get("request_id"))
            response.status_code = exc.code or 500
            return response
        return exc
