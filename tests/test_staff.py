"""Staff accounts: argon2id hashes, CSRF-protected sign-in, lockout, sessions, API tokens."""

from __future__ import annotations

import pytest
from flask import Blueprint

from tests.helpers import PASSWORD, login, make_user
from tracker.clock import utcnow
from tracker.extensions import db
from tracker.services import staff
from tracker.web.auth import roles_required


@pytest.fixture
def app(app):
    probe = Blueprint("probe", __name__)

    @probe.get("/api/probe")
    @probe.get("/probe")
    @roles_required({"analyst"})
    def probe_view():
        return "secret figures"

    app.register_blueprint(probe)
    return app


def test_password_is_stored_as_argon2id(app):
    user = make_user("ana@amniotic.studio", "analyst")
    assert user.password_hash.startswith("$argon2id$")
    assert PASSWORD not in user.password_hash


def test_short_password_refused(app):
    with pytest.raises(staff.StaffError, match="at least 12"):
        staff.create_user("x@amniotic.studio", "short", "analyst", now=utcnow())


def test_login_without_csrf_token_is_refused(client):
    make_user("ana@amniotic.studio", "analyst")
    response = client.post("/staff/login", data={"email": "ana@amniotic.studio",
                                                 "password": PASSWORD})
    assert response.status_code == 400


def test_role_gate_html_and_api(client):
    make_user("ana@amniotic.studio", "analyst")
    make_user("cr@amniotic.studio", "customer_relations")
    assert client.get("/probe").status_code == 302
    assert client.get("/api/probe").status_code == 401
    login(client, "cr@amniotic.studio")
    assert client.get("/probe").status_code == 403
    client.post("/staff/logout")
    assert login(client, "ana@amniotic.studio").status_code == 302
    assert client.get("/probe").data == b"secret figures"


def test_lockout_after_repeated_failures(client):
    make_user("ana@amniotic.studio", "analyst")
    for _ in range(staff.LOCKOUT_AFTER):
        login(client, "ana@amniotic.studio", "wrong password!")
    assert staff.authenticate("ana@amniotic.studio", PASSWORD, now=utcnow()) is None


def test_role_change_ends_open_sessions(client):
    user = make_user("ana@amniotic.studio", "analyst")
    login(client, "ana@amniotic.studio")
    assert client.get("/probe").status_code == 200
    staff.set_role(user, "marketing")
    assert client.get("/probe").status_code == 302


def test_api_token(client):
    user = make_user("ana@amniotic.studio", "analyst")
    token = staff.create_token(user, "ci", now=utcnow())
    assert client.get("/api/probe", headers={"Authorization": f"Bearer {token}"}).status_code \
        == 200
    assert client.get("/api/probe", headers={"Authorization": "Bearer nope"}).status_code == 401
    staff.set_active(user, False)
    db.session.commit()
    assert client.get("/api/probe", headers={"Authorization": f"Bearer {token}"}).status_code \
        == 401
