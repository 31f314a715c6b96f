"""HTTP layer: blueprints parse requests, call one service and shape the response."""

from __future__ import annotations

import logging
import secrets

from flask import Flask, g, jsonify, request
from werkzeug.exceptions import HTTPException

from tracker.extensions import csrf
from tracker.web import api, auth, collector, limits, middleware, openapi, site
from tracker.web.campaigns import bp as campaigns_bp
from tracker.web.dashboard import bp as dashboard_bp
from tracker.web.forms import bp as forms_bp
from tracker.web.inbox import bp as inbox_bp
from tracker.web.privacy import init_app as init_privacy
from tracker.web.reports_api import bp as reports_api_bp


def init_app(app: Flask) -> None:
    # Werkzeug's access log prints every client's IP address; the policy forbids logging
    # it before consent, so the request log is ours (see tracker.web.api) and carries none.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    middleware.init_app(app)
    # Before any route is added: ids in URLs are bounded (see tracker.web.limits).
    app.url_map.converters["int"] = limits.DatabaseId
    # The public API is called cross-site by the banner with no session: nothing to forge.
    csrf.exempt(api.bp)
    app.register_blueprint(api.bp)
    app.register_blueprint(auth.bp)
    app.register_blueprint(site.bp)
    # Public forms carry their own stateless token (see tracker.web.forms), not a session's.
    csrf.exempt(forms_bp)
    app.register_blueprint(forms_bp)
    app.register_blueprint(inbox_bp)
    app.register_blueprint(campaigns_bp)
    app.register_blueprint(dashboard_bp)
    app.register_blueprint(reports_api_bp)
    app.register_blueprint(openapi.bp)
    limits.init_app(app)
    init_privacy(app)
    collector.init_app(app)

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):  # type: ignore[no-untyped-def]
        if request.path.startswith("/api/"):
            # The rate limiter runs before the request is given its id: give it one here.
            request_id = g.setdefault("request_id", secrets.token_hex(8))
            response = jsonify(error=exc.name.lower().replace(" ", "_"), reason=exc.description,
                               request_id=request_id)
            response.status_code = exc.code or 500
            # Keep what the error's own answer would say in headers (Allow on a 405,
            # Retry-After on a 429 of tracker.web.limits; Flask-Limiter adds its own).
            for name, value in exc.get_headers():
                if name.lower() != "content-type":
                    response.headers[name] = value
            return response
        return exc
