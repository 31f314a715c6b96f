"""Public forms the studio's site embeds (contact, newsletter) and the links we e-mail.

Embedding: the site shows each form in an iframe (`<iframe src="https://TRACKER/forms/contact
?lang=fr">`), so the form, its errors and its confirmation are all rendered here and the site
needs no script. Inside a cross-site iframe the session cookie is not sent, so Flask-WTF's
session-bound CSRF token cannot work; instead:

- each form carries a stateless token (the form's name and display time, signed with the
  secret key; `tracker.domain.mail.issue_form_token`) that expires;
- a POST whose `Origin` is not this tracker's own origin (the iframe's) is refused, which is
  what stops another site from posting the form on its visitors' behalf;
- `frame-ancestors` lets only the configured site origins embed the pages (no clickjacking);
- a honeypot field, length limits and a rate limit per client IP curb spam.

A public form carries no ambient authority (no session, no account), so these are the
protections that matter. Confirmation and unsubscribe links carry their own signed token and
need no cookie: RFC 8058's one-click POST must work from a mail client.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    Response,
    current_app,
    redirect,
    render_template,
    request,
    url_for,
)
from werkzeug.exceptions import TooManyRequests

from tracker.clock import utcnow
from tracker.domain.mail import (
    CONFIRM_PATH,
    EMAIL_MAX,
    HONEYPOT,
    MESSAGE_MAX,
    OPEN_PATH,
    TEXTS,
    UNSUBSCRIBE_PATH,
    FormInvalid,
    error_text,
    form_token_error,
    issue_form_token,
    parse_contact,
    parse_newsletter,
    pick_lang,
)
from tracker.extensions import limiter
from tracker.services import contact, newsletter
from tracker.services.mailer import MailError

bp = Blueprint("forms", __name__)

# A transparent 1x1 GIF.
PIXEL = bytes.fromhex("47494638396101000100800000000000ffffff21f90401000000002c00000000"
                      "010001000002024401003b")
FORMS = {"forms.contact_post": "contact", "forms.newsletter_post": "newsletter"}


def _form_limit() -> str:
    return current_app.config["TRACKER_FORM_RATE_LIMIT"]


@bp.after_request
def embeddable(response: Response) -> Response:
    ancestors = " ".join(["'self'", *current_app.config["TRACKER_SITE_ORIGINS"]])
    response.headers.setdefault(
        "Content-Security-Policy",
        "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
        f"base-uri 'none'; frame-ancestors {ancestors}")
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    # Confirmation and unsubscribe URLs hold tokens: no Referer leaves this origin. (Not
    # "no-referrer": browsers then send `Origin: null`, and the origin check needs it.)
    response.headers.setdefault("Referrer-Policy", "same-origin")
    response.headers.setdefault("Cache-Control", "no-store")
    return response


@bp.errorhandler(TooManyRequests)
def rate_limited(exc: TooManyRequests) -> Any:
    form = FORMS.get(request.endpoint or "")
    if form is None:
        return exc
    return _render_form(form, {"_form": "rate_limited"}, request.form), 429


def _lang() -> str:
    return pick_lang(request.values.get("lang"))


def _render_form(form: str, errors: dict[str, str], values: Any) -> str:
    lang = _lang()
    return render_template(
        f"forms/{form}.html", lang=lang, t=TEXTS[lang], values=values,
        errors={name: error_text(lang, code) for name, code in errors.items()},
        token=issue_form_token(current_app.config["SECRET_KEY"], form, utcnow()),
        honeypot=HONEYPOT, email_max=EMAIL_MAX, message_max=MESSAGE_MAX)


def _own_origins() -> set[str]:
    origins = {request.host_url.rstrip("/")}
    public = urlsplit(current_app.config["TRACKER_PUBLIC_URL"])
    origins.add(f"{public.scheme}://{public.netloc}")
    return origins


def _guard(form: str) -> tuple[dict[str, str], int] | None:
    """The whole-form error (and status) when the POST is not from our own form."""
    origin = request.headers.get("Origin")
    # Browsers send Origin with every POST; its absence (an old browser, a script) falls
    # back on the token alone.
    if origin is not None and origin not in _own_origins():
        return {"_form": "origin"}, 403
    problem = form_token_error(
        current_app.config["SECRET_KEY"], request.form.get("token", ""), form, utcnow(),
        max_age=_token_age())
    return ({"_form": problem}, 400) if problem else None


def _token_age() -> timedelta:
    return timedelta(hours=current_app.config["TRACKER_FORM_TOKEN_HOURS"])


@bp.get("/forms/contact")
def contact_form() -> str:
    return _render_form("contact", {}, {})


@bp.post("/forms/contact")
@limiter.limit(_form_limit)
def contact_post() -> Any:
    refused = _guard("contact")
    if refused:
        return _render_form("contact", refused[0], request.form), refused[1]
    try:
        data = parse_contact(request.form)
    except FormInvalid as exc:
        return _render_form("contact", exc.errors, request.form), 422
    contact.receive(data, lang=_lang(), now=utcnow())
    return redirect(url_for("forms.contact_sent", lang=_lang()), 303)


@bp.get("/forms/contact/sent")
def contact_sent() -> str:
    t = TEXTS[_lang()]
    return render_template("forms/message.html", lang=_lang(), t=t,
                           title=t["contact_sent_title"], text=t["contact_sent"],
                           back=url_for("forms.contact_form", lang=_lang()))


@bp.get("/forms/newsletter")
def newsletter_form() -> str:
    return _render_form("newsletter", {}, {})


@bp.post("/forms/newsletter")
@limiter.limit(_form_limit)
def newsletter_post() -> Any:
    refused = _guard("newsletter")
    if refused:
        return _render_form("newsletter", refused[0], request.form), refused[1]
    try:
        data = parse_newsletter(request.form)
    except FormInvalid as exc:
        return _render_form("newsletter", exc.errors, request.form), 422
    try:
        newsletter.request_subscription(data, lang=_lang(), now=utcnow())
    except MailError:
        return _render_form("newsletter", {"_form": "mail_failed"}, request.form), 503
    return redirect(url_for("forms.newsletter_sent", lang=_lang()), 303)


@bp.get("/forms/newsletter/sent")
def newsletter_sent() -> str:
    t = TEXTS[_lang()]
    return render_template("forms/message.html", lang=_lang(), t=t,
                           title=t["newsletter_sent_title"], text=t["newsletter_sent"])


def _message(lang: str, title: str, text: str, status: int = 200, *,
             fmt: dict[str, Any] | None = None, **extra: Any) -> Any:
    t = TEXTS[lang]
    return render_template("forms/message.html", lang=lang, t=t, title=t[title],
                           text=t[text].format(**(fmt or {})), **extra), status


@bp.route(f"{CONFIRM_PATH}<token>", methods=["GET", "POST"])
def confirm(token: str) -> Any:
    """GET shows a button (mail scanners follow links; only a person's click confirms)."""
    now = utcnow()
    if request.method == "POST":
        done = newsletter.confirm(token, now)
        if done is None:
            return _message(_lang(), "confirm_invalid_title", "confirm_invalid", 404)
        return _message(done.lang, "confirmed_title", "confirmed")
    found = newsletter.find_confirmation(token, now)
    if found is None:
        return _message(_lang(), "confirm_invalid_title", "confirm_invalid", 404)
    if found.done:
        return _message(found.lang, "confirmed_title", "confirmed")
    return _message(found.lang, "confirm_title", "confirm_lead", button="confirm_button",
                    fmt={"email": found.email})


@bp.route(f"{UNSUBSCRIBE_PATH}<token>", methods=["GET", "POST"])
def unsubscribe(token: str) -> Any:
    """GET asks for a click; POST (our button, or a mail client's RFC 8058 one-click)
    unsubscribes at once, with no cookie or login, and is idempotent."""
    if request.method == "POST":
        done = newsletter.unsubscribe(token, utcnow())
    else:
        done = newsletter.find_unsubscription(token)
    if done is None:
        return _message(_lang(), "unsubscribe_title", "unsubscribe_invalid", 404)
    if done.kind == "test":
        return _message(done.lang, "unsubscribe_title", "unsubscribe_test")
    if done.done:
        return _message(done.lang, "unsubscribed_title", "unsubscribed")
    return _message(done.lang, "unsubscribe_title", "unsubscribe_lead",
                    button="unsubscribe_button", one_click=True,
                    fmt={"email": done.email_hint})


@bp.get(f"{OPEN_PATH}<token>.gif")
def open_pixel(token: str) -> Response:
    newsletter.record_open(token, utcnow())
    response = Response(PIXEL, mimetype="image/gif")
    response.headers["Cache-Control"] = "no-store, private"
    return response
