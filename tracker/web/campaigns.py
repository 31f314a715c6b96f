"""Marketing pages: write a campaign, preview it, test it on yourself, send it, read its report;
the subscriber list and the record of "stop" requests."""

from __future__ import annotations

from typing import Any

from flask import (
    Blueprint,
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
from wtforms.validators import DataRequired, Length

from tracker.clock import utcnow
from tracker.domain.mail import (
    CAMPAIGN_BODY_MAX,
    EMAIL_MAX,
    LANGS,
    SUBJECT_MAX,
    FormInvalid,
    send_blocker,
)
from tracker.domain.register import roles_for
from tracker.models import Campaign, User
from tracker.services import campaigns, newsletter
from tracker.services.mailer import MailError
from tracker.web.auth import current_staff, roles_required
from tracker.web.inbox import mail_nav

bp = Blueprint("campaigns", __name__, url_prefix="/staff")
# The register says who handles the newsletter's personal data; the pages follow it.
MARKETING = roles_for("newsletter")
# The campaign's HTML is staff-written: the preview shows it in a sandbox with no script.
PREVIEW_CSP = ("sandbox; default-src 'none'; img-src https: data:; style-src 'unsafe-inline'; "
               "frame-ancestors 'self'")


bp.context_processor(mail_nav)


class CampaignForm(FlaskForm):
    subject = StringField("Subject", validators=[DataRequired(), Length(max=SUBJECT_MAX)])
    lang = SelectField("Language", choices=list(LANGS))
    html = TextAreaField("HTML version",
                         validators=[DataRequired(), Length(max=CAMPAIGN_BODY_MAX)])
    text = TextAreaField("Plain-text version",
                         validators=[DataRequired(), Length(max=CAMPAIGN_BODY_MAX)])


class StopForm(FlaskForm):
    email = EmailField("E-mail address", validators=[DataRequired(), Length(max=EMAIL_MAX)])


def _actor() -> User:
    user = current_staff()
    assert user is not None  # roles_required let the request through
    return user


def _campaign(campaign_id: int) -> Campaign:
    campaign = campaigns.get(campaign_id)
    if campaign is None:
        abort(404)
    return campaign


@bp.get("/campaigns/")
@roles_required(MARKETING)
def index() -> str:
    rows = [(c, campaigns.report(c.id)) for c in campaigns.all_campaigns()]
    return render_template("staff/mail/campaigns.html", rows=rows,
                           counts=newsletter.counts())


@bp.route("/campaigns/new", methods=["GET", "POST"])
@bp.route("/campaigns/<int:campaign_id>/edit", methods=["GET", "POST"])
@roles_required(MARKETING)
def edit(campaign_id: int | None = None) -> Any:
    campaign = _campaign(campaign_id) if campaign_id is not None else None
    form = CampaignForm(obj=campaign)
    if form.validate_on_submit():
        try:
            campaign = campaigns.save(
                campaign, actor=_actor(), subject=form.subject.data or "",
                html=form.html.data or "", text=form.text.data or "",
                lang=form.lang.data or LANGS[0], now=utcnow())
        except campaigns.CampaignError as exc:
            flash(str(exc))
        else:
            flash("Saved. Send a test to yourself before sending it to subscribers.")
            return redirect(url_for("campaigns.show", campaign_id=campaign.id))
    return render_template("staff/mail/campaign_form.html", form=form, campaign=campaign)


@bp.get("/campaigns/<int:campaign_id>")
@roles_required(MARKETING)
def show(campaign_id: int) -> str:
    campaign = _campaign(campaign_id)
    return render_template(
        "staff/mail/campaign.html", campaign=campaign, report=campaigns.report(campaign_id),
        blocker=send_blocker(campaign.status, campaign.edited_at, campaign.tested_at),
        audience=newsletter.counts()["subscribers"])


@bp.get("/campaigns/<int:campaign_id>/preview")
@roles_required(MARKETING)
def preview(campaign_id: int) -> Response:
    """The HTML part exactly as a subscriber receives it (footer included, no pixel)."""
    response = Response(campaigns.preview_html(_campaign(campaign_id)), mimetype="text/html")
    response.headers["Content-Security-Policy"] = PREVIEW_CSP
    return response


@bp.post("/campaigns/<int:campaign_id>/test")
@roles_required(MARKETING)
def send_test(campaign_id: int) -> Any:
    campaign = _campaign(campaign_id)
    actor = _actor()
    try:
        campaigns.send_test(campaign, actor, now=utcnow())
    except MailError as exc:
        flash(f"The test could not be sent: {exc}")
    else:
        flash(f"Test sent to {actor.email}.")
    return redirect(url_for("campaigns.show", campaign_id=campaign_id))


@bp.post("/campaigns/<int:campaign_id>/send")
@roles_required(MARKETING)
def send(campaign_id: int) -> Any:
    campaign = _campaign(campaign_id)
    try:
        count = campaigns.start(campaign, _actor(), now=utcnow())
    except campaigns.CampaignError as exc:
        flash(str(exc))
    else:
        campaigns.dispatch(current_app._get_current_object(), campaign_id)  # type: ignore[attr-defined]
        flash(f"Sending to {count} subscribers. Refresh this page to follow the progress.")
    return redirect(url_for("campaigns.show", campaign_id=campaign_id))


@bp.post("/campaigns/<int:campaign_id>/resume")
@roles_required(MARKETING)
def resume(campaign_id: int) -> Any:
    """Pick up a delivery that stopped (the process was restarted, SMTP was down)."""
    campaign = _campaign(campaign_id)
    if campaign.status != "sending":
        abort(409, "this campaign is not being sent")
    campaigns.dispatch(current_app._get_current_object(), campaign_id)  # type: ignore[attr-defined]
    flash("Resumed: copies already sent are not sent again.")
    return redirect(url_for("campaigns.show", campaign_id=campaign_id))


@bp.get("/campaigns/<int:campaign_id>/report.json")
@roles_required(MARKETING)
def report_json(campaign_id: int) -> Response:
    campaign = _campaign(campaign_id)
    return jsonify(campaign_id=campaign.id, status=campaign.status,
                   **campaigns.report(campaign_id).as_dict())


@bp.get("/newsletter/subscribers")
@roles_required(MARKETING)
def subscribers() -> str:
    page = newsletter.subscribers(_actor(), page=request.args.get("page", 1, type=int))
    return render_template("staff/mail/subscribers.html", page=page, form=StopForm(),
                           counts=newsletter.counts())


@bp.post("/newsletter/stop")
@roles_required(MARKETING)
def stop() -> Any:
    """Record a "stop" that arrived by any route (a reply to a campaign, a phone call)."""
    form = StopForm()
    if not form.validate_on_submit():
        flash("Enter the e-mail address that asked to stop.")
        return redirect(url_for("campaigns.subscribers"))
    try:
        was = newsletter.stop(_actor(), form.email.data or "", now=utcnow())
    except FormInvalid:
        flash("That is not an e-mail address.")
    else:
        flash("Recorded: no more marketing e-mail to that address" +
              (" (it was subscribed and has been erased)." if was else
               " (it was not subscribed; it can no longer be imported)."))
    return redirect(url_for("campaigns.subscribers"))
