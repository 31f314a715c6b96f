"""JSON Schemas (draft 2020-12) of the JSON the API takes and returns, built from the limits
and enums the parsers themselves enforce.

tracker.web.openapi assembles them into the published OpenAPI description, so a changed limit
(MAX_URL, MAX_TITLE...) or enum (EVENT_TYPES, PURPOSES, LANGS, METHODS...) changes the contract
with it. The schemas describe what the server accepts; where a parser is laxer than a schema can
say (see each description), the schema states the documented form. Pure data: no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from tracker.domain import reports
from tracker.domain.consent import HEX32, LANGS, METHODS, PURPOSES
from tracker.domain.mail import CAMPAIGN_SENDING, CAMPAIGN_SENT, DRAFT
from tracker.domain.payloads import (
    EVENT_TYPES,
    MAX_ENGAGED_MS,
    MAX_POLICY_VERSION,
    MAX_TITLE,
    MAX_URL,
)
from tracker.domain.register import DATA_CATEGORIES, DATA_SUBJECTS
from tracker.domain.roles import ROLES

Schema = dict[str, Any]

# The parsers refuse NUL characters in every string they keep (PostgreSQL cannot store them).
NO_NUL = "^[^\\x00]*$"
HEX32_PATTERN = f"^{HEX32.pattern}$"
# Characters with a meaning in a regular expression (ECMA-262 and Python agree on these).
_REGEX_SPECIAL = frozenset("\\^$.|?*+()[]{}")


def regex_escape(text: str) -> str:
    """Escape `text` for a JSON Schema `pattern` (ECMA-262: no escapes of plain characters)."""
    return "".join("\\" + c if c in _REGEX_SPECIAL else c for c in text)


def hex32(description: str, *, nullable: bool = False) -> Schema:
    """A random identifier: 32 lower-case hexadecimal characters (or null)."""
    return {"type": ["string", "null"] if nullable else "string", "pattern": HEX32_PATTERN,
            "description": description}


def text(limit: int, description: str, *, nullable: bool = False) -> Schema:
    """A string of at most `limit` characters (code points), without NUL."""
    return {"type": ["string", "null"] if nullable else "string", "maxLength": limit,
            "pattern": NO_NUL, "description": description}


def page_url(origins: Sequence[str]) -> Schema:
    """An absolute URL of a page on one of the sites this collector serves."""
    sites = "|".join(regex_escape(origin.rstrip("/")) for origin in origins)
    return {"type": "string", "maxLength": MAX_URL,
            "pattern": f"^(?:{sites})(?:[/?#][^\\x00]*)?$" if origins else "^https?://[^\\x00]*$",
            "description": "The page's absolute http(s) URL. Its origin must be one of the sites "
                           f"this collector serves ({', '.join(origins) or 'none configured'}); "
                           "others are refused with 422 (field `url`)."}


# -- requests --------------------------------------------------------------------------------

def consent_request() -> Schema:
    """POST /api/consent: a decision made in the banner."""
    return {
        "type": "object",
        "required": ["choices", "policy_version", "lang"],
        "properties": {
            "visitor_id": hex32("The random id the banner keeps in the `amn_vid` cookie; stored "
                                "only when analytics is granted.", nullable=True),
            "choices": {
                "type": "object", "required": list(PURPOSES), "additionalProperties": False,
                "properties": {p: {"type": "boolean"} for p in PURPOSES},
                "description": "Yes or no for each purpose. Location is used only together "
                               "with analytics."},
            "policy_version": text(MAX_POLICY_VERSION, "The version of the privacy policy "
                                   "the banner showed."),
            "lang": {"enum": list(LANGS), "description": "The banner's language."},
            "method": {"enum": [*METHODS, None], "description": "The button used; derived "
                       "from the choices when null or absent."},
        },
    }


def _beacon_fields(origins: Sequence[str]) -> dict[str, Schema]:
    return {
        "event_id": hex32("Chosen by the client, so a beacon delivered twice is counted once; "
                          "the server chooses one when null.", nullable=True),
        "visitor_id": hex32("The `amn_vid` cookie.", nullable=True),
        "consent_id": hex32("The consent that allows this beacon (the `amn_consent` "
                            "cookie's first field).", nullable=True),
        "url": page_url(origins),
        "referrer": text(MAX_URL, "`document.referrer`; only its host is kept.",
                         nullable=True),
        "title": text(MAX_TITLE, "`document.title`.", nullable=True),
    }


def beacon_request(origins: Sequence[str]) -> Schema:
    """POST /api/collect: one event, a pageview or the engaged time of an earlier one."""
    fields = _beacon_fields(origins)
    variants = {
        "pageview": {
            "type": "object", "required": ["type", "url"], "title": "Pageview",
            "properties": {"type": {"const": "pageview"}, **fields},
        },
        "engagement": {
            "type": "object", "required": ["type", "url", "pageview_id", "engaged_ms"],
            "title": "Engagement",
            "properties": {
                "type": {"const": "engagement"}, **fields,
                "pageview_id": hex32("The `event_id` of the pageview this time belongs to."),
                "engaged_ms": {"type": "integer", "minimum": 0, "maximum": MAX_ENGAGED_MS,
                               "description": "Milliseconds the page was visible so far "
                                              "(cumulative: the largest value counts)."},
            },
        },
    }
    # Built from EVENT_TYPES: a new event type fails here until it is described above.
    return {"oneOf": [variants[kind] for kind in EVENT_TYPES],
            "discriminator": {"propertyName": "type"}}


def visitor_request() -> Schema:
    """POST /api/me/export and /api/me/erase: the visitor id the banner holds."""
    return {"type": "object", "required": ["visitor_id"],
            "properties": {"visitor_id": hex32("The `amn_vid` cookie.")}}


def payload_fields(schema: Schema) -> list[str]:
    """The `field` values a 422 answer may name for a body of this schema."""
    names: dict[str, None] = {"body": None}
    for variant in schema.get("oneOf", [schema]):
        for name, sub in variant.get("properties", {}).items():
            names[name] = None
            for nested in sub.get("properties", {}):
                names[f"{name}.{nested}"] = None
    return list(names)


# -- responses -------------------------------------------------------------------------------

TIMESTAMP = {"type": "string", "format": "date-time"}
NULLABLE_TIMESTAMP = {"type": ["string", "null"], "format": "date-time"}
NULLABLE_TEXT = {"type": ["string", "null"]}
NULLABLE_INT = {"type": ["integer", "null"]}


def consent_recorded() -> Schema:
    return {"type": "object", "required": ["consent_id", "expires_at", "visitor_id"],
            "properties": {
                "consent_id": hex32("The proof's id; the banner stores it in `amn_consent`."),
                "expires_at": {**TIMESTAMP, "description": "When the banner asks again."},
                "visitor_id": hex32("The visitor id kept with the proof (null when analytics "
                                    "was refused).", nullable=True)}}


def event_accepted() -> Schema:
    return {"type": "object", "required": ["event_id"],
            "properties": {"event_id": hex32("The beacon's event id (the one sent, or a new "
                                             "one).")}}


def error(codes: Iterable[str] | None = None, *, fields: Sequence[str] | None = None,
          request_id: bool = False) -> Schema:
    """An error answer: a machine-readable `error`, a human `reason`, maybe the `field`."""
    code: Schema = {"enum": list(codes)} if codes is not None else {"type": "string"}
    properties: dict[str, Schema] = {"error": code, "reason": {"type": "string"}}
    required = ["error", "reason"]
    if fields is not None:
        properties["field"] = {"enum": list(fields), "description": "What was wrong."}
        required.append("field")
    if request_id:
        properties["request_id"] = {"type": ["string", "null"], "description": "Also in the "
                                    "`X-Request-ID` header; quote it when reporting a problem."}
        required.append("request_id")
    return {"type": "object", "required": required, "properties": properties}


def visitor_export() -> Schema:
    """Everything stored under a visitor id (GET my data)."""
    consent = {"type": "object",
               "required": ["id", "given_at", "expires_at", "withdrawn_at", "analytics",
                            "location", "marketing", "method", "policy_version", "lang"],
               "properties": {
                   "id": hex32("The consent proof's id."), "given_at": TIMESTAMP,
                   "expires_at": TIMESTAMP, "withdrawn_at": NULLABLE_TIMESTAMP,
                   **{p: {"type": "boolean"} for p in PURPOSES},
                   "method": {"enum": list(METHODS)}, "policy_version": {"type": "string"},
                   "lang": {"enum": list(LANGS)}, "banner_sha256": NULLABLE_TEXT}}
    pageview = {"type": "object", "required": ["page", "time", "engaged_ms"],
                "properties": {"page": {"type": "string"}, "title": NULLABLE_TEXT,
                               "time": TIMESTAMP, "engaged_ms": {"type": "integer"},
                               "previous_page": NULLABLE_TEXT}}
    visit_text = ("dns_name", "organisation", "country", "city", "browser", "browser_version",
                  "os", "device", "referrer_domain", "utm_source", "utm_medium", "utm_campaign",
                  "ip")
    visit = {"type": "object", "required": ["started_at", "last_seen_at", "pageviews"],
             "properties": {"started_at": TIMESTAMP, "last_seen_at": TIMESTAMP,
                            **{name: NULLABLE_TEXT for name in visit_text},
                            "asn": NULLABLE_INT, "engaged_ms": NULLABLE_INT,
                            "pageviews": {"type": "array", "items": pageview}}}
    return {"type": "object",
            "required": ["visitor_id", "generated_at", "about", "consents", "visits"],
            "properties": {"visitor_id": hex32("The id asked for."),
                           "generated_at": TIMESTAMP, "about": {"type": "string"},
                           "consents": {"type": "array", "items": consent},
                           "visits": {"type": "array", "items": visit}},
            "additionalProperties": {"type": "array", "items": {"type": "object"},
                                     "description": "Rows of any other table keyed by the "
                                                    "visitor id."}}


def erasure_done() -> Schema:
    return {"type": "object", "required": ["erased", "erasure_id", "counts"],
            "properties": {"erased": {"const": True},
                           "erasure_id": {"type": "integer", "description": "The record that "
                                          "an erasure happened (it holds no personal data)."},
                           "counts": {"type": "object",
                                      "additionalProperties": {"type": "integer", "minimum": 0},
                                      "description": "Rows removed per table."}}}


def requester_export() -> Schema:
    """What an approved access request hands over: every row holding the address."""
    return {"type": "object", "required": ["email", "generated_at"],
            "properties": {"email": {"type": "string"}, "generated_at": TIMESTAMP,
                           "opposition_list": {"type": "object",
                                               "required": ["listed"],
                                               "properties": {"listed": {"type": "boolean"}}},
                           "requests": {"type": "array", "items": {"type": "object"}}},
            "additionalProperties": {"type": "array", "items": {"type": "object"}}}


# -- staff reports ---------------------------------------------------------------------------

CELL = {"type": ["string", "number", "boolean", "null", "array"],
        "items": {"type": ["string", "number", "null"]}}


def report(names: Iterable[str]) -> Schema:
    """One report as JSON: named tables of rows, plus the report's extras."""
    table = {"type": "object", "required": ["columns", "rows"],
             "properties": {
                 "columns": {"type": "array", "items": {
                     "type": "object", "required": ["key", "kind"],
                     "properties": {"key": {"type": "string"},
                                    "kind": {"enum": list(reports.COLUMN_KINDS)}}}},
                 "rows": {"type": "array", "items": {"type": "object",
                                                     "additionalProperties": CELL}}}}
    link = {"type": "object", "required": ["label", "count", "kind"],
            "properties": {"label": {"type": "string"}, "count": {"type": "integer"},
                           "kind": {"enum": ["node", "entrance", "exit", "other"]}}}
    flow = {"type": "object", "required": ["by", "focus", "total", "came_from", "went_to"],
            "properties": {"by": {"enum": list(reports.FLOW_BY)}, "focus": {"type": "string"},
                           "total": {"type": "integer"},
                           "came_from": {"type": "array", "items": link},
                           "went_to": {"type": "array", "items": link}}}
    extras = dict.fromkeys(reports.JSON_EXTRAS, {"type": ["object", "null"]})
    extras["flow"] = {"anyOf": [flow, {"type": "null"}]}
    return {"type": "object",
            "required": ["report", "from", "to", "timezone", "granularity", "filters",
                         "tables"],
            "properties": {
                "report": {"enum": list(names)},
                "from": {"type": "string", "format": "date"},
                "to": {"type": "string", "format": "date"},
                "timezone": {"type": "string"},
                "granularity": {"enum": list(reports.GRANULARITIES)},
                "filters": {"type": "object", "propertyNames": {"enum": list(reports.FILTER_KEYS)},
                            "additionalProperties": {"type": "string"}},
                "tables": {"type": "object", "additionalProperties": table},
                **extras,
            }}


def report_parameters() -> list[Schema]:
    """The query parameters of GET /api/reports/{name}, as OpenAPI parameter objects.

    An empty value counts as absent (the default applies), hence the "" in the enums.
    """
    def query(name: str, schema: Schema, description: str) -> Schema:
        return {"name": name, "in": "query", "required": False, "schema": schema,
                "description": description}

    def choice(values: Sequence[str]) -> Schema:
        return {"enum": ["", *values]}

    limit = reports.MAX_FILTER_LENGTH
    day = {"anyOf": [{"type": "string", "format": "date"}, {"const": ""}]}
    params = [
        query("preset", choice(reports.PRESETS), "A named range (default "
              f"{reports.DEFAULT_PRESET}); ignored when `from` or `to` is given."),
        query("from", day, "First day (YYYY-MM-DD)."),
        query("to", day, "Last day, included (YYYY-MM-DD; default today). A range covers at "
              f"most {reports.MAX_RANGE_DAYS} days."),
        query("granularity", choice(reports.GRANULARITIES), "Bucket size of series; "
              f"automatic when absent. Hours: {reports.MAX_HOURLY_DAYS} days at most."),
        query("by", choice(reports.FLOW_BY), "Flows: centre on a page or a section."),
        query("focus", {"type": "string", "maxLength": limit},
              "Flows: the page path or section to centre on."),
        query("limit", {"anyOf": [{"type": "integer", "minimum": 1,
                                   "maximum": reports.MAX_LIMIT}, {"const": ""}]},
              "Rows per table."),
        query("format", choice(("json", "csv")), "`csv` answers one table as CSV."),
        query("table", {"type": "string"}, "With format=csv: which table (default the first)."),
    ]
    filters = {"page": {"type": "string", "maxLength": limit, "pattern": "^(/|$)"},
               "country": {"type": "string", "pattern": "^([A-Za-z]{2})?$"}}
    for key in reports.FILTER_KEYS:
        params.append(query(key, filters.get(key, {"type": "string", "maxLength": limit}),
                            f"Filter: only traffic whose {key} is this value (surrounding "
                            "spaces ignored)."))
    return params


# -- the register of processing (public) and campaign figures (staff) ------------------------

def register() -> Schema:
    """The register of processing (GDPR Art. 30), as /privacy/register.json publishes it."""
    strings = {"type": "array", "items": {"type": "string"}}
    processing_text = ("key", "name", "data_collected", "purpose", "data_use", "legal_basis",
                       "retention", "storage", "access", "recipients", "notes")
    processing = {
        "type": "object",
        "required": [*processing_text, "data_subjects", "data_categories", "retention_rules",
                     "roles", "outside_eu", "columns"],
        "properties": {
            **{name: {"type": "string"} for name in processing_text},
            "data_subjects": {"type": "array", "items": {"enum": list(DATA_SUBJECTS)}},
            "data_categories": {"type": "array", "items": {
                "type": "object", "required": ["key", "name"],
                "properties": {"key": {"enum": list(DATA_CATEGORIES)},
                               "name": {"type": "string"}}}},
            "retention_rules": strings,
            "roles": {"type": "array", "items": {"enum": list(ROLES)}},
            "outside_eu": {"type": "boolean"},
            "columns": strings,
        }}
    return {"type": "object", "required": ["controller", "roles", "processings"],
            "properties": {
                "controller": {"type": "string"},
                "roles": {"type": "object", "propertyNames": {"enum": list(ROLES)},
                          "additionalProperties": {"type": "string"}},
                "processings": {"type": "array", "items": processing}}}


CAMPAIGN_FIGURES = ("recipients", "sent", "accepted", "failed", "unknown", "pending",
                    "in_flight", "skipped", "tracked", "unique_opens", "total_opens",
                    "unsubscriptions")


def campaign_report() -> Schema:
    return {"type": "object",
            "required": ["campaign_id", "status", *CAMPAIGN_FIGURES, "open_rate"],
            "properties": {"campaign_id": {"type": "integer"},
                           "status": {"enum": [DRAFT, CAMPAIGN_SENDING, CAMPAIGN_SENT]},
                           **{n: {"type": "integer", "minimum": 0} for n in CAMPAIGN_FIGURES},
                           "open_rate": {"type": ["number", "null"], "minimum": 0,
                                         "maximum": 1}}}
