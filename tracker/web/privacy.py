"""Privacy pages: the public register and rights requests, visitors' "see/delete my data" API,
and the data protection officer's desk (requests, authorities' lookups, consent proofs, audit
log, retention status)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    Flask,
    Response,
    abort,
    current_app,
    flash,
    jsonify,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_wtf import FlaskForm
from wtforms import EmailField, SelectField, StringField, TextAreaField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Length

from tracker.clock import utcnow
from tracker.domain import privacy as rules
from tracker.domain import register
from tracker.domain.payloads import PayloadError
from tracker.domain.roles import ADMIN, DPO
from tracker.extensions import csrf, limiter
from tracker.services import audit, privacy, retention, rights
from tracker.services import register as register_views
from tracker.web import api
from tracker.web.auth import current_staff, recent_auth_required, roles_required

bp = Blueprint("privacy", __name__, url_prefix="/privacy")
api_bp = Blueprint("privacy_api", __name__, url_prefix="/api/me")
staff_bp = Blueprint("privacy_staff", __name__, url_prefix="/staff/privacy")

# The desk's front page shows only job statuses and counts, no personal data.
DESK_ROLES = frozenset({ADMIN, DPO})


def init_app(app: Flask) -> None:
    """Register the three blueprints.

    The visitors' API is cross-site and session-less. The public pages set no cookie at all
    (no session, so no session-bound CSRF token): a forged POST could at worst send someone a
    verification code, and cross-origin POSTs are refused by their Origin anyway.
    """
    csrf.exempt(api_bp)
    csrf.exempt(bp)
    app.register_blueprint(bp)
    app.register_blueprint(api_bp)
    app.register_blueprint(staff_bp)


@bp.record_once
def _check_settings(state: Any) -> None:
    # Refuse to start with retention settings that contradict the register.
    register.check_settings(state.app.config)


def _privacy_limit() -> str:
    return current_app.config["TRACKER_PRIVACY_RATE_LIMIT"]


def _lang() -> str:
    return "en" if request.args.get("lang") == "en" else "fr"


@bp.before_request
def same_origin_posts() -> None:
    """Refuse POSTs sent from another site (browsers always send Origin with a POST)."""
    origin = request.headers.get("Origin")
    if request.method == "POST" and origin is not None:
        public = urlsplit(current_app.config["TRACKER_PUBLIC_URL"])
        if origin not in {request.host_url.rstrip("/"), f"{public.scheme}://{public.netloc}"}:
            abort(403, "this form can only be sent from its own page")


class PublicForm(FlaskForm):
    class Meta:
        csrf = False  # see init_app


# -- public: the register --------------------------------------------------------------------

@bp.get("/")
def index() -> str:
    return render_template("privacy/index.html")


@bp.get("/register")
def register_page() -> Any:
    if request.args.get("format") == "json":
        return register_json()
    return render_template("privacy/register.html",
                           data=register_views.as_data(current_app.config))


@bp.get("/register.json")
def register_json() -> Response:
    response = jsonify(register_views.as_data(current_app.config))
    response.headers["Access-Control-Allow-Origin"] = "*"
    return response


# -- public: rights requests by e-mail -------------------------------------------------------

class RequestForm(PublicForm):
    kind = SelectField("Right", choices=[SelectChoice(value, label)
                                         for value, label in rules.KINDS.items()])
    email = EmailField("E-mail address", validators=[DataRequired(),
                                                     Length(max=rules.MAX_EMAIL)])
    details = TextAreaField("Details", validators=[Length(max=rules.MAX_DETAILS)])


class CodeForm(PublicForm):
    code = StringField("Code", validators=[DataRequired(), Length(min=6, max=12)])


class ConfirmForm(PublicForm):
    pass


@bp.route("/requests", methods=["GET", "POST"])
@limiter.limit(_privacy_limit, methods=["POST"])
def request_form() -> Any:
    form, error = RequestForm(), None
    if form.validate_on_submit():
        try:
            made = rights.open_request(form.kind.data or "", form.email.data or "",
                                       form.details.data or "", lang=_lang(), now=utcnow())
        except rules.RequestInvalid as exc:
            field = getattr(form, exc.field)
            field.errors = [*field.errors, exc.message]
        except rights.RequestError as exc:
            error = str(exc)
        else:
            return redirect(url_for("privacy.verify", public_id=made.public_id))
    return render_template("privacy/request_form.html", form=form, error=error)


@bp.route("/requests/<public_id>/verify", methods=["GET", "POST"])
@limiter.limit(_privacy_limit, methods=["POST"])
def verify(public_id: str) -> Any:
    form, error = CodeForm(), None
    if form.validate_on_submit():
        try:
            rights.verify_code(public_id, form.code.data or "", now=utcnow())
        except rights.VerificationFailed as exc:
            error = str(exc)
        else:
            return redirect(url_for("privacy.request_received"))
    return render_template("privacy/request_verify.html", form=form, error=error,
                           minutes=int(rules.CODE_LIFETIME.total_seconds() // 60)), \
        400 if error else 200


@bp.route("/requests/confirm/<token>", methods=["GET", "POST"])
@limiter.limit(_privacy_limit, methods=["POST"])
def confirm_link(token: str) -> Any:
    # A GET only shows a button: mail scanners that open links must not use them up.
    form = ConfirmForm()
    if form.validate_on_submit():
        try:
            rights.verify_link(token, now=utcnow())
        except rights.VerificationFailed as exc:
            return render_template("privacy/request_confirm.html", form=None,
                                   error=str(exc)), 400
        return redirect(url_for("privacy.request_received"))
    return render_template("privacy/request_confirm.html", form=form, error=None)


@bp.get("/requests/received")
def request_received() -> str:
    return render_template("privacy/request_received.html", due_months=rules.DUE_MONTHS)


@bp.get("/requests/<public_id>/export")
def requester_export(public_id: str) -> Response:
    try:
        body = rights.requester_export(public_id, request.args.get("token", ""), now=utcnow())
    except rights.RequestError as exc:
        abort(410, str(exc))
    return _download(body, "my-data.json")


def _download(body: str, filename: str, mimetype: str = "application/json") -> Response:
    response = Response(body, mimetype=mimetype)
    response.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    response.headers["Cache-Control"] = "no-store"
    return response


# -- visitors' self-service API (called by the banner) ---------------------------------------

api_bp.after_request(api.cors)
api_bp.register_error_handler(PayloadError, api.bad_payload)


@api_bp.post("/export")
@limiter.limit(_privacy_limit, methods=["POST"])
def export_mine() -> Response:
    """Everything stored under the visitor id sent, as a JSON download."""
    visitor_id = rules.parse_visitor_request(api.json_body())
    data = privacy.export_visitor(visitor_id, now=utcnow())
    return _download(json.dumps(data, indent=2, ensure_ascii=False), "my-data.json")


@api_bp.post("/erase")
@limiter.limit(_privacy_limit, methods=["POST"])
def erase_mine() -> Response:
    """Erase everything stored under the visitor id sent; forget the cookies too."""
    visitor_id = rules.parse_visitor_request(api.json_body())
    record = privacy.erase_visitor(visitor_id, now=utcnow())
    response = jsonify(erased=True, erasure_id=record.id,
                       counts=privacy.erasure_counts(record))
    if api.shares_site():
        cfg = current_app.config
        for name in (api.VISITOR_COOKIE, api.CONSENT_COOKIE):
            response.delete_cookie(name, path="/", domain=cfg["TRACKER_COOKIE_DOMAIN"],
                                   secure=cfg["TRACKER_SECURE_COOKIES"], samesite="Lax")
    return response


# -- staff: the data protection officer's desk -----------------------------------------------

@staff_bp.context_processor
def _template_helpers() -> dict[str, Any]:
    return {"can_read": register.can_read}


@staff_bp.get("/")
@roles_required(DESK_ROLES)
def desk() -> str:
    now = utcnow()
    return render_template("staff/privacy/desk.html", status=retention.status(now=now),
                           runs=retention.recent_runs(10), run_counts=retention.run_counts,
                           pending=rights.pending_count(), now=now)


@staff_bp.get("/requests")
@roles_required(register.roles_for("data_subject_requests"))
def requests_queue() -> str:
    now = utcnow()
    items = rights.queue(_staff(), now=now, include_closed=request.args.get("all") == "1")
    return render_template("staff/privacy/requests.html", items=items, kinds=rules.KINDS)


class DecisionForm(FlaskForm):
    note = TextAreaField("Note or reason", validators=[Length(max=2000)])


@staff_bp.get("/requests/<int:request_id>")
@roles_required(register.roles_for("data_subject_requests"))
def request_detail(request_id: int) -> str:
    item = rights.read(_staff(), request_id)
    if item is None:
        abort(404)
    return render_template("staff/privacy/request.html", item=item, form=DecisionForm(),
                           kinds=rules.KINDS, now=utcnow())


@staff_bp.post("/requests/<int:request_id>/<any(approve, deny):decision>")
@roles_required(register.roles_for("data_subject_requests"))
@recent_auth_required
def decide(request_id: int, decision: str) -> Any:
    form = DecisionForm()
    if not form.validate_on_submit():
        abort(400)
    note = form.note.data or ""
    try:
        if decision == "approve":
            rights.approve(_staff(), request_id, now=utcnow(), note=note)
        else:
            rights.deny(_staff(), request_id, note, now=utcnow())
    except rights.RequestError as exc:
        flash(str(exc))
    else:
        flash(f"Request {request_id} {'approved' if decision == 'approve' else 'denied'}.")
    return redirect(url_for("privacy_staff.request_detail", request_id=request_id))


@staff_bp.get("/requests/<int:request_id>/export")
@roles_required(register.roles_for("data_subject_requests"))
@recent_auth_required
def request_export(request_id: int) -> Response:
    body = rights.staff_export(_staff(), request_id)
    if body is None:
        abort(404)
    return _download(body, f"request-{request_id}.json")


class LookupForm(FlaskForm):
    network = StringField("IP address or network", validators=[DataRequired(),
                                                               Length(max=64)])
    starts_at = StringField("From (UTC)", validators=[DataRequired()])
    ends_at = StringField("To (UTC)", validators=[DataRequired()])
    authority = StringField("Requesting authority", validators=[Length(max=200)])
    legal_reference = StringField("Legal reference of the request",
                                  validators=[Length(max=300)])


def _moment(value: str | None) -> datetime | None:
    try:
        return datetime.fromisoformat((value or "").strip())
    except ValueError:
        return None


@staff_bp.route("/lookup", methods=["GET", "POST"])
@roles_required(register.roles_for("analytics"))
def lookup() -> Any:
    """Authorities' requests: visits of an IP address or network in a time window."""
    form = LookupForm()
    if form.validate_on_submit():
        return _run_lookup(form)
    return render_template("staff/privacy/lookup.html", form=form, result=None)


@recent_auth_required  # a disclosure to a third party: the password is asked again if stale
def _run_lookup(form: LookupForm) -> Any:
    try:
        query = rules.check_lookup(form.network.data or "", _moment(form.starts_at.data),
                                   _moment(form.ends_at.data), form.authority.data or "",
                                   form.legal_reference.data or "")
    except rules.RequestInvalid as exc:
        field = getattr(form, exc.field, None) or form.starts_at
        field.errors = [*field.errors, exc.message]
        return render_template("staff/privacy/lookup.html", form=form, result=None), 422
    result = privacy.authority_lookup(_staff(), query, now=utcnow())
    if request.form.get("format") == "csv":
        return _download(result.csv, f"lookup-{result.lookup.id}.csv", "text/csv")
    return render_template("staff/privacy/lookup.html", form=form, result=result)


@staff_bp.get("/lookups")
@roles_required(register.roles_for("authority_requests"))
def lookups() -> str:
    return render_template("staff/privacy/lookups.html",
                           lookups=privacy.past_lookups(_staff()))


@staff_bp.get("/consents")
@roles_required(register.roles_for("consent_proofs"))
def consents() -> str:
    query = request.args.get("q", "").strip()
    proofs = privacy.consent_proofs(_staff(), query) if query else None
    return render_template("staff/privacy/consents.html", query=query, proofs=proofs)


@staff_bp.get("/audit")
@roles_required(register.roles_for("audit_log"))
def audit_log() -> str:
    result, entries = audit.review(_staff(), request.args.get("expect", "").strip() or None)
    return render_template("staff/privacy/audit.html", result=result, entries=entries)


def _staff() -> Any:
    user = current_staff()
    assert user is not None  # roles_required let the request through
    return user
