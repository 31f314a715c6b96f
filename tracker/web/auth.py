"""Staff sign-in, sign-out, and the access check every staff view goes through."""

from __future__ import annotations

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
    url_for,
)
from flask_login import current_user, login_user, logout_user
from flask_wtf import FlaskForm
from wtforms import EmailField, PasswordField
from wtforms.validators import DataRequired, Length

from tracker.clock import utcnow
from tracker.extensions import db, limiter, login_manager
from tracker.models import User
from tracker.services import staff

bp = Blueprint("auth", __name__, url_prefix="/staff")
F = TypeVar("F", bound=Callable[..., Any])


class LoginForm(FlaskForm):
    email = EmailField("E-mail", validators=[DataRequired(), Length(max=254)])
    password = PasswordField("Password", validators=[DataRequired(), Length(max=1024)])


@login_manager.user_loader
def load_user(session_id: str) -> User | None:
    return staff.load_session_user(session_id)


def _login_limit() -> str:
    return current_app.config["TRACKER_LOGIN_RATE_LIMIT"]


@bp.route("/login", methods=["GET", "POST"])
@limiter.limit(_login_limit, methods=["POST"])
def login() -> Any:
    form = LoginForm()
    if form.validate_on_submit():
        user = staff.authenticate(form.email.data or "", form.password.data or "", now=utcnow())
        if user is not None:
            login_user(user)
            return redirect(_safe_next(request.args.get("next")))
        flash("Unknown e-mail or wrong password, or the account is locked for a while.")
    return render_template("staff/login.html", form=form)


@bp.post("/logout")
def logout() -> Any:
    if current_user.is_authenticated:
        staff.end_sessions(current_user)
        db.session.commit()
    logout_user()
    return redirect(url_for("auth.login"))


def _safe_next(target: str | None) -> str:
    """Only same-site paths, so the login page cannot redirect visitors elsewhere."""
    if target and target.startswith("/") and not target.startswith("//") \
            and not urlsplit(target).netloc:
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
