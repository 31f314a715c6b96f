"""GET /api/reports/<name>: every report as JSON, or one of its tables as CSV."""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping
from typing import Any

from flask import Blueprint, Response, abort, current_app, jsonify, request

from tracker.clock import utcnow
from tracker.domain.reports import (
    Report,
    ReportError,
    ReportQuery,
    local_date,
    parse_filters,
    parse_granularity,
    parse_options,
    parse_range,
    zone,
)
from tracker.domain.roles import REPORT_READERS
from tracker.services import reports, runtime
from tracker.web.auth import roles_required

bp = Blueprint("reports_api", __name__, url_prefix="/api/reports")

# A spreadsheet runs a cell starting with one of these as a formula; page titles, paths and
# referrers come from the public internet, so such cells are written as text.
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def parse_query(args: Mapping[str, str]) -> tuple[ReportQuery, str | None]:
    """The ReportQuery a request asks for, and the preset its range came from."""
    tz_name = current_app.config["TRACKER_TIMEZONE"]
    now = utcnow()
    period, preset = parse_range(args, local_date(now, zone(tz_name)))
    query = ReportQuery(
        range=period,
        granularity=parse_granularity(args.get("granularity"), period),
        filters=parse_filters(args),
        timezone=tz_name,
        now=now,
        section_rules=tuple(runtime.ingest().section_rules),
        **parse_options(args),
    )
    return query, preset


def bad_parameter(exc: ReportError) -> tuple[Response, int]:
    return jsonify(error="invalid_parameter", field=exc.field, reason=exc.message), 400


@bp.get("/<name>")
@roles_required(REPORT_READERS)
def report(name: str) -> Any:
    if name not in reports.REPORTS:
        abort(404, f"no report called {name}; choose one of {', '.join(reports.REPORTS)}")
    try:
        query, _ = parse_query(request.args)
    except ReportError as exc:
        return bad_parameter(exc)
    result = reports.run(name, query)
    fmt = request.args.get("format") or "json"
    if fmt == "csv":
        table_name = request.args.get("table") or next(iter(result.tables))
        if table_name not in result.tables:
            return bad_parameter(ReportError(
                "table", f"choose one of {', '.join(result.tables)}"))
        response = Response(to_csv(result, table_name), mimetype="text/csv")
        filename = f"{name}-{table_name}-{query.range.start}-{query.range.end}.csv"
        response.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    elif fmt == "json":
        response = jsonify(result.as_dict())
    else:
        return bad_parameter(ReportError("format", "must be json or csv"))
    # Aggregates still describe the business: keep them out of shared caches.
    response.headers["Cache-Control"] = "private, no-store"
    return response


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, list):
        value = " > ".join(str(v) for v in value)
    if isinstance(value, float):
        return round(value, 4)
    if isinstance(value, str) and value.startswith(FORMULA_PREFIXES):
        return "'" + value
    return value


def to_csv(result: Report, table_name: str) -> str:
    """One table of a report as CSV: a header of column keys, then the rows."""
    table = result.tables[table_name]
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow([c.key for c in table.columns])
    for row in table.rows:
        writer.writerow([_cell(row.get(c.key)) for c in table.columns])
    return out.getvalue()
