"""The customer-relations inbox: contact-form messages (list, read, mark handled, delete)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for

from tracker.clock import utcnow
from tracker.domain.register import roles_for
from tracker.models import User
from tracker.services import contact
from tracker.web.auth import current_staff, roles_required

bp = Blueprint("inbox", __name__, url_prefix="/staff/inbox")
# The register says who reads contact messages; the page follows it.
READERS = roles_for("contact_form")
MAIL_ROLES = {"inbox": READERS, "newsletter": roles_for("newsletter")}


def _actor() -> User:
    user = current_staff()
    assert user is not None  # roles_required let the request through
    return user


@bp.context_processor
def mail_nav() -> dict[str, Any]:
    """Which mail pages the navigation offers (each role sees only its own)."""
    return {"mail_roles": MAIL_ROLES}


@bp.get("/")
@roles_required(READERS)
def index() -> str:
    unhandled_only = request.args.get("show") == "unhandled"
    page = contact.inbox(_actor(), page=request.args.get("page", 1, type=int),
                         unhandled_only=unhandled_only)
    return render_template("staff/mail/inbox.html", inbox=page, unhandled_only=unhandled_only)


@bp.get("/<int:message_id>")
@roles_required(READERS)
def read(message_id: int) -> str:
    message = contact.read(_actor(), message_id)
    if message is None:
        abort(404)
    return render_template("staff/mail/message.html", message=message)


@bp.post("/<int:message_id>/handled")
@roles_required(READERS)
def handled(message_id: int) -> Any:
    done = request.form.get("handled", "1") == "1"
    if not contact.set_handled(_actor(), message_id, done, now=utcnow()):
        abort(404)
    flash(f"Message {message_id} marked {'handled' if done else 'not handled'}.")
    return redirect(url_for("inbox.index"))


@bp.post("/<int:message_id>/delete")
@roles_required(READERS)
def delete(message_id: int) -> Any:
    if not contact.delete(_actor(), message_id):
        abort(404)
    flash(f"Message {message_id} deleted.")
    return redirect(url_for("inbox.index"))
