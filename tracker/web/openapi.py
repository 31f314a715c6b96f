"""GET /api/openapi.json: the OpenAPI 3.1 description of every public and staff JSON endpoint.

Assembled from tracker.domain.schemas (built from the parsers' own limits and enums) and the
settings in force (body cap, rate limits, site origins), so the published contract follows the
code; tests/test_openapi.py and tests/test_fuzz_api.py hold the code to it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from flask import Blueprint, Response, current_app, jsonify
from werkzeug.http import HTTP_STATUS_CODES

from tracker.domain import schemas
from tracker.services import reports
from tracker.web import limits

bp = Blueprint("openapi", __name__)

OPENAPI_VERSION = "3.1.0"
JSON = "application/json"
# The public API reads JSON sent as text/plain too: navigator.sendBeacon and a fetch without
# a CORS preflight can send nothing else.
BEACON_TYPES = (JSON, "text/plain")
Operation = dict[str, Any]


@bp.get("/api/openapi.json")
def openapi_json() -> Response:
    response = jsonify(build(current_app.config, list(reports.REPORTS)))
    response.headers["Access-Control-Allow-Origin"] = "*"  # a public document
    return response


def http_error_code(status: int) -> str:
    """The `error` value tracker.web's JSON error handler gives a status."""
    return HTTP_STATUS_CODES[status].lower().replace(" ", "_")


# -- reusable responses ----------------------------------------------------------------------

RETRY_AFTER = {"description": "Seconds to wait before trying again.", "required": True,
               "schema": {"type": "string", "pattern": "^[0-9]+$"}}
REQUEST_ID = {"description": "This request's id (also in JSON error bodies); it is in the "
              "server's log line for the request.", "required": True,
              "schema": {"type": "string"}}


def _json(schema: dict[str, Any], description: str, **extra: Any) -> dict[str, Any]:
    return {"description": description, "content": {JSON: {"schema": schema}}, **extra}


def _http_error(status: int, description: str, **extra: Any) -> dict[str, Any]:
    return _json(schemas.error([http_error_code(status)], request_id=True), description,
                 **extra)


def _too_large(config: Mapping[str, Any]) -> dict[str, Any]:
    return _http_error(413, f"The body is larger than {config['TRACKER_MAX_BODY_BYTES']} "
                       "bytes (TRACKER_MAX_BODY_BYTES).")


def _rate_limited(limit: str, setting: str) -> dict[str, Any]:
    per_network = setting in limits.API_LIMITS.values()
    return _http_error(429, f"Over {setting} ({limit}) from this client: its "
                       "IP address" + (", or its /64 network for IPv6" if per_network else "")
                       + ", as the connection gives it or the trusted proxies wrote it "
                       "(TRACKER_TRUSTED_PROXIES).",
                       headers={"Retry-After": {"$ref": "#/components/headers/RetryAfter"}})


def _invalid_payload(fields: Sequence[str]) -> dict[str, Any]:
    return _json(schemas.error(["invalid_payload"], fields=fields),
                 "The body is not valid JSON of the described shape, or a field breaks a "
                 "limit; `field` names it.")


def _json_body(schema: dict[str, Any], description: str, config: Mapping[str, Any],
               *, media_types: Sequence[str] = (JSON,)) -> dict[str, Any]:
    return {"required": True,
            "description": f"{description} At most {config['TRACKER_MAX_BODY_BYTES']} bytes "
                           "of UTF-8 JSON.",
            "content": {media: {"schema": schema} for media in media_types}}


def _public_post(config: Mapping[str, Any], *, summary: str, description: str,
                 body: dict[str, Any], body_text: str, responses: dict[str, Any],
                 limit_setting: str, media_types: Sequence[str] = (JSON,)) -> Operation:
    accepted = ", ".join(media_types)
    return {
        "summary": summary, "description": description, "tags": ["public"], "security": [],
        "requestBody": _json_body(body, body_text, config, media_types=media_types),
        "responses": {
            **responses,
            "413": _too_large(config),
            "415": _http_error(415, f"The Content-Type is not one of: {accepted}."),
            "422": _invalid_payload(schemas.payload_fields(body)),
            "429": _rate_limited(config[limit_setting], limit_setting),
        },
    }


# -- operations ------------------------------------------------------------------------------

def _consent(config: Mapping[str, Any]) -> Operation:
    return _public_post(
        config, summary="Record a banner decision",
        description="Stores the proof of a consent or refusal. When the collector shares the "
                    "site's domain (same origin, or TRACKER_COOKIE_DOMAIN set) the answer also "
                    "sets the `amn_consent` and `amn_vid` cookies.",
        body=schemas.consent_request(), body_text="The decision.",
        limit_setting="TRACKER_CONSENT_RATE_LIMIT", media_types=BEACON_TYPES,
        responses={"201": _json(schemas.consent_recorded(), "The proof was stored.")})


def _collect(config: Mapping[str, Any]) -> Operation:
    return _public_post(
        config, summary="Send a beacon",
        description="A pageview, or the engaged time of an earlier pageview. Accepted only "
                    "with a live analytics consent of the same visitor; stored asynchronously.",
        body=schemas.beacon_request(config["TRACKER_SITE_ORIGINS"]),
        body_text="One event, as `navigator.sendBeacon` sends it (text/plain is accepted "
                  "because sendBeacon cannot send application/json without a preflight).",
        limit_setting="TRACKER_COLLECT_RATE_LIMIT", media_types=BEACON_TYPES,
        responses={
            "202": _json(schemas.event_accepted(), "Accepted: durably queued."),
            "403": _json(schemas.error(["consent_required"]),
                         "No live analytics consent for this visitor: nothing was recorded."),
            "503": _json(schemas.error(["unavailable"]),
                         "The consent store is unreachable: nothing was recorded; send again "
                         "after Retry-After.",
                         headers={"Retry-After": {"$ref": "#/components/headers/RetryAfter"}}),
        })


def _visitor_self_service(config: Mapping[str, Any], *, export: bool) -> Operation:
    if export:
        ok = _json(schemas.visitor_export(), "Everything stored under the id, as a download.",
                   headers={"Content-Disposition": {
                       "required": True, "schema": {"type": "string"},
                       "description": "`attachment; filename=\"my-data.json\"`"}})
    else:
        ok = _json(schemas.erasure_done(), "Erased; the answer also deletes the cookies when "
                   "the collector shares the site's domain.")
    return _public_post(
        config, summary="See my data" if export else "Delete my data",
        description="Called by the banner with the visitor id it holds (the `amn_vid` "
                    "cookie): whoever holds the id is the visitor it names.",
        body=schemas.visitor_request(), body_text="The visitor id.",
        limit_setting="TRACKER_PRIVACY_RATE_LIMIT", media_types=BEACON_TYPES,
        responses={"200": ok})


STAFF_SECURITY = [{"apiToken": []}, {"staffSession": []}]


def _report(names: Sequence[str]) -> Operation:
    return {
        "summary": "One staff report", "tags": ["staff"], "security": STAFF_SECURITY,
        "description": "Aggregates only: no figure names an individual. Bots are left out.",
        "parameters": [
            {"name": "name", "in": "path", "required": True, "schema": {"enum": list(names)},
             "description": "Which report."},
            *schemas.report_parameters(),
        ],
        "responses": {
            "200": {"description": "The report as JSON, or one of its tables as CSV.",
                    "content": {JSON: {"schema": schemas.report(names)},
                                "text/csv": {"schema": {"type": "string"}}}},
            "400": _json(schemas.error(["invalid_parameter"], fields=[
                p["name"] for p in schemas.report_parameters()] + ["timezone"]),
                "A parameter is invalid; `field` names it."),
            "401": _json(schemas.error(["unauthorized"]),
                         "Neither a signed-in session nor a valid API token."),
            "403": _http_error(403, "The account's role may not read reports."),
            "404": _http_error(404, "No report of that name."),
        },
    }


def _campaign_report() -> Operation:
    return {
        "summary": "A campaign's figures", "tags": ["staff"], "security": STAFF_SECURITY,
        "parameters": [{"name": "campaign_id", "in": "path", "required": True,
                        "schema": {"type": "integer", "minimum": 0, "maximum": limits.MAX_ID}}],
        "responses": {
            "200": _json(schemas.campaign_report(), "Counts of the copies sent and opened."),
            "302": {"description": "Not signed in: redirected to the sign-in page.",
                    "headers": {"Location": {"required": True, "schema": {"type": "string"}}}},
            "403": {"description": "The account's role does not handle the newsletter.",
                    "content": {"text/html": {"schema": {"type": "string"}}}},
            "404": {"description": "No such campaign (or an id larger than any id).",
                    "content": {"text/html": {"schema": {"type": "string"}}}},
        },
    }


def _register(*, html: bool) -> Operation:
    ok = {JSON: {"schema": schemas.register()}}
    operation: Operation = {
        "summary": "The register of processing (GDPR Art. 30)", "tags": ["public"],
        "security": [],
        "responses": {"200": {"description": "The register, with the configured periods.",
                              "content": ok}},
    }
    if html:
        operation["parameters"] = [{"name": "format", "in": "query", "required": False,
                                    "schema": {"type": "string"},
                                    "description": "`json` for the same data as "
                                                   "/privacy/register.json; any other value "
                                                   "(or none) the page."}]
        ok["text/html"] = {"schema": {"type": "string"}}
    return operation


def _requester_export() -> Operation:
    return {
        "summary": "Download the answer to an access request", "tags": ["public"],
        "security": [],
        "description": "The link e-mailed once a verified access request is approved.",
        "parameters": [
            {"name": "public_id", "in": "path", "required": True, "schema": {"type": "string"}},
            {"name": "token", "in": "query", "required": True, "schema": {"type": "string"},
             "description": "The signed token of the e-mailed link."}],
        "responses": {
            "200": _json(schemas.requester_export(), "Every row holding the address."),
            "410": {"description": "The link is invalid, or the export has expired.",
                    "content": {"text/html": {"schema": {"type": "string"}}}},
        },
    }


def _openapi() -> Operation:
    return {"summary": "This description", "tags": ["public"], "security": [],
            "responses": {"200": _json({"type": "object", "required": ["openapi", "paths"]},
                                       "The OpenAPI document.")}}


def build(config: Mapping[str, Any], report_names: Sequence[str]) -> dict[str, Any]:
    """The OpenAPI document for an app with these settings."""
    paths: dict[str, dict[str, Operation]] = {
        "/api/consent": {"post": _consent(config)},
        "/api/collect": {"post": _collect(config)},
        "/api/me/export": {"post": _visitor_self_service(config, export=True)},
        "/api/me/erase": {"post": _visitor_self_service(config, export=False)},
        "/api/reports/{name}": {"get": _report(report_names)},
        "/api/openapi.json": {"get": _openapi()},
        "/privacy/register.json": {"get": _register(html=False)},
        "/privacy/register": {"get": _register(html=True)},
        "/privacy/requests/{public_id}/export": {"get": _requester_export()},
        "/staff/campaigns/{campaign_id}/report.json": {"get": _campaign_report()},
    }
    for path, operations in paths.items():
        for method, operation in operations.items():
            operation["operationId"] = _operation_id(method, path)
            for response in operation["responses"].values():
                response.setdefault("headers", {})["X-Request-ID"] = {
                    "$ref": "#/components/headers/RequestId"}
    return {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": "Amniotic tracker",
            "version": config["TRACKER_POLICY_VERSION"],
            "summary": "Consent-gated web analytics: the banner's API and the staff reports.",
            "description": "Public endpoints are called cross-site by the consent banner "
                           f"(CORS for {', '.join(config['TRACKER_SITE_ORIGINS'])}). Every "
                           "JSON error carries `error` (a code) and `reason` (a sentence); "
                           "errors of the HTTP layer add `request_id`.",
        },
        "servers": [{"url": config["TRACKER_PUBLIC_URL"]}],
        "paths": paths,
        "components": {
            "headers": {"RetryAfter": RETRY_AFTER, "RequestId": REQUEST_ID},
            "securitySchemes": {
                "apiToken": {"type": "http", "scheme": "bearer",
                             "description": "A staff API token (`amn_...`)."},
                "staffSession": {"type": "apiKey", "in": "cookie", "name": "session",
                                 "description": "A signed-in staff session (browser)."},
            },
        },
        "tags": [{"name": "public", "description": "Called by the banner and visitors."},
                 {"name": "staff", "description": "Needs a staff account."}],
    }


def _operation_id(method: str, path: str) -> str:
    words = [w.strip("{}").replace(".", "_") for w in path.split("/") if w]
    return method + "".join(w[:1].upper() + w[1:] for w in words)
