"""What-if, for measurement only: the tracker with the app-wide request hooks taken off.

Not a deployment: it drops the rate limits, the request log, the security headers and the
staff-session checks. It shows what the collector itself costs (its view, CORS, spool, drain)
when those shared hooks cost nothing on beacons; `python -m bench --suite ingest --lean`.
"""

from __future__ import annotations

from typing import Any

from flask import Flask
from flask.sessions import SecureCookieSessionInterface

from tracker import create_app as create_tracker

KEPT = ("tracker.web.api",)  # the collector's own hooks: body cap, CORS


class _NoCookieSession(SecureCookieSessionInterface):
    def open_session(self, app: Flask, request: Any) -> Any:
        return self.make_null_session(app)


def create_app() -> Flask:
    app = create_tracker()
    for name in ("before_request_funcs", "after_request_funcs", "teardown_request_funcs"):
        for funcs in getattr(app, name).values():
            funcs[:] = [f for f in funcs if getattr(f, "__module__", "").startswith(KEPT)]
    app.session_interface = _NoCookieSession()
    return app
