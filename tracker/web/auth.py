"""Staff sign-in (password, then a TOTP code for admin and dpo), sessions and access checks."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from functools import wraps
from typing import Any, TypeVar
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    jsonify,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_login import current_user, login_user, logout_user
from flask_wtf import FlaskForm
from wtforms import EmailField, PasswordField, StringField
from wtforms.validators import DataRequired, Length

from tracker.clock import utcnow
from tracker.domain import totp
from tracker.extensions import db, limiter, login_manager
from tracker.models import User
from tracker.services import staff

bp = Blueprint("auth", __name__, url_prefix="/staff")
F = TypeVar("F", bound=Callable[..., Any])

PENDING = "pending_second_factor"
ENROLLING = "totp_enrollment_secret"
AUTH_AT = "authenticated_at"
SEEN_AT = "seen_at"


class LoginForm(FlaskForm):
    email = EmailField("E-mail", validators=[DataRequired(), Length(max=254)])
    password = PasswordField("Password", validators=[DataRequired(), Length(max=1024)])


class CodeForm(FlaskForm):
    code = StringField("Code", validators=[DataRequired(), Length(min=6, max=8)])


class ReauthForm(FlaskForm):
    password = PasswordField("Password", validators=[DataRequired(), Length(max=1024)])
    code = StringField("Code", validators=[Length(max=8)])


@login_manager.user_loader
def load_user(session_id: str) -> User | None:
    return staff.load_session_user(session_id)


def _login_limit() -> str:
    return current_app.config["TRACKER_LOGIN_RATE_LIMIT"]


@bp.before_app_request
def enforce_session_timeouts() -> Any:
    """End staff sessions that were idle too long or are older than the absolute limit."""
    if not current_user.is_authenticated:
        return None
    cfg, now = current_app.config, time.time()
    idle = now - session.get(SEEN_AT, 0) > cfg["TRACKER_SESSION_IDLE_MINUTES"] * 60
    too_old = now - session.get(AUTH_AT, 0) > cfg["TRACKER_SESSION_MAX_HOURS"] * 3600
    if idle or too_old:
        logout_user()
        session.clear()
        flash("Your session ended; please sign in again.")
        return None
    session[SEEN_AT] = now
    return None


@bp.route("/login", methods=["GET", "POST"])
@limiter.limit(_login_limit, methods=["POST"])
def login() -> Any:
    form = LoginForm()
    if form.validate_on_submit():
        user = staff.authenticate(form.email.data or "", form.password.data or "", now=utcnow())
        if user is None:
            flash("Unknown e-mail or wrong password, or the account is locked for a while.")
        elif staff.needs_second_factor(user):
            session[PENDING] = {"user": user.get_id(), "at": time.time(),
                                "next": request.args.get("next")}
            return redirect(url_for("auth.second_factor"))
        else:
            return _finish_login(user, request.args.get("next"))
    return render_template("staff/login.html", form=form)


@bp.route("/2fa", methods=["GET", "POST"])
@limiter.limit(_login_limit, methods=["POST"])
def second_factor() -> Any:
    """Second step for admin and dpo: a TOTP code, enrolling the authenticator the first time."""
    pending = session.get(PENDING)
    user = staff.load_session_user(pending["user"]) if pending else None
    if user is None or time.time() - pending["at"] > 300:
        session.pop(PENDING, None)
        return redirect(url_for("auth.login"))
    form = CodeForm()
    enrolling = not user.totp_secret
    if enrolling:
        session.setdefault(ENROLLING, totp.new_secret())
    if form.validate_on_submit():
        code, now = form.code.data or "", time.time()
        ok = (staff.confirm_totp(user, session[ENROLLING], code, unix_time=now) if enrolling
              else staff.verify_totp(user, code, unix_time=now))
        if ok:
            session.pop(ENROLLING, None)
            session.pop(PENDING, None)
            return _finish_login(user, pending.get("next"))
        flash("That code is not valid; wait for the next one and try again.")
    secret = session.get(ENROLLING) if enrolling else None
    return render_template("staff/second_factor.html", form=form, secret=secret,
                           uri=totp.provisioning_uri(secret, user.email) if secret else None)


@bp.route("/reauth", methods=["GET", "POST"])
@limiter.limit(_login_limit, methods=["POST"])
def reauth() -> Any:
    """Confirm the password (and code) again before a sensitive action."""
    if not current_user.is_authenticated:
        return redirect(url_for("auth.login"))
    user: User = current_user._get_current_object()
    form = ReauthForm()
    if form.validate_on_submit():
        again = staff.authenticate(user.email, form.password.data or "", now=utcnow())
        code_ok = not staff.needs_second_factor(user) or staff.verify_totp(
            user, form.code.data or "", unix_time=time.time())
        if again is not None and again.id == user.id and code_ok:
            session[AUTH_AT] = time.time()
            return redirect(_safe_next(request.args.get("next")))
        flash("Wrong password or code.")
    return render_template("staff/reauth.html", form=form,
                           needs_code=staff.needs_second_factor(user))


@bp.post("/logout")
def logout() -> Any:
    if current_user.is_authenticated:
        staff.end_sessions(current_user)
        db.session.commit()
    logout_user()
    session.clear()
    return redirect(url_for("auth.login"))


def _finish_login(user: User, next_url: str | None) -> Any:
    session.clear()  # a fresh session after sign-in: no fixation
    login_user(user)
    session[AUTH_AT] = session[SEEN_AT] = time.time()
    return redirect(_safe_next(next_url))


def _safe_next(target: str | None) -> str:
    """Only same-site paths, so the login page cannot redirect visitors elsewhere."""
    if target and target.startswith("/") and not target.startswith("//") \
            and not urlsplit(target).netloc and "\\" not in target:
        return target
    return url_for("dashboard.index") if "dashboard.index" in current_app.view_functions \
        else "/"


def current_staff() -> User | None:
    """The signed-in user, or the owner of a valid `Authorization: Bearer` API token."""
    header = request.headers.get("Authorization", "")
    if header.startswith("Bearer "):
        return staff.user_for_token(header[7:].strip(), now=utcnow())
    if current_user.is_authenticated:
        return current_user._get_current_object()
    return None


def roles_required(roles: Iterable[str]) -> Callable[[F], F]:
    """Allow a view to the given roles; others get 403, anonymous 401 (API) or the login."""
    allowed = frozenset(roles)

    def decorator(view: F) -> F:
        @wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            user = current_staff()
            if user is None:
                if request.path.startswith("/api/"):
                    response = jsonify(error="unauthorized",
                                       reason="sign in or send an API token")
                    response.status_code = 401
                    return response
                return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))
            if user.role not in allowed:
                abort(403, f"the {user.role} role cannot use this page")
            return view(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorator


def recent_auth_required(view: F) -> F:
    """Ask for the password again when the sign-in is older than TRACKER_REAUTH_MINUTES.

    API tokens cannot re-authenticate, so token requests to such views are refused.
    """

    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        limit = current_app.config["TRACKER_REAUTH_MINUTES"] * 60
        if not current_user.is_authenticated:
            abort(401, "this action needs a signed-in session, not an API token")
        if time.time() - session.get(AUTH_AT, 0) > limit:
            return redirect(url_for("auth.reauth", next=request.full_path.rstrip("?")))
        return view(*args, **kwargs)

    return wrapper  # type: ignore[return-value]
