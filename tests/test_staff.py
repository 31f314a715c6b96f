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


@pytest.mark.parametrize(("password", "reason"), [
    ("password1234", "common"),
    ("aaaaaaaaaaaa", "easy to guess"),
    ("ana.amniotic-2026", "account's name"),
    ("x" * 129, "at most 128"),
])
def test_weak_passwords_refused(app, password, reason):
    with pytest.raises(staff.StaffError, match=reason):
        staff.create_user("ana.amniotic@amniotic.studio", password, "analyst", now=utcnow())


def test_admin_needs_a_second_factor(client):
    from tests.helpers import csrf_token, next_totp_code

    make_user("boss@amniotic.studio", "admin")
    response = client.post("/staff/login", data={
        "email": "boss@amniotic.studio", "password": PASSWORD,
        "csrf_token": csrf_token(client, "/staff/login")})
    assert response.headers["Location"].endswith("/staff/2fa")
    assert client.get("/staff/2fa").status_code == 200
    bad = client.post("/staff/2fa", data={"code": "000000",
                                          "csrf_token": csrf_token(client, "/staff/2fa")})
    assert bad.status_code == 200 and b"not valid" in bad.data
    code = next_totp_code("boss@amniotic.studio")
    ok = client.post("/staff/2fa", data={"code": code,
                                         "csrf_token": csrf_token(client, "/staff/2fa")})
    assert ok.status_code == 302
    # The same code cannot be replayed for another sign-in.
    client.post("/staff/logout")
    client.post("/staff/login", data={"email": "boss@amniotic.studio", "password": PASSWORD,
                                      "csrf_token": csrf_token(client, "/staff/login")})
    replay = client.post("/staff/2fa", data={"code": code,
                                             "csrf_token": csrf_token(client, "/staff/2fa")})
    assert replay.status_code == 200


def test_first_sign_in_enrolls_the_authenticator(client):
    import re
    import time

    from tests.helpers import csrf_token
    from tracker.domain import totp

    user = make_user("dpo@amniotic.studio", "dpo")
    user.totp_secret = None
    db.session.commit()
    client.post("/staff/login", data={"email": "dpo@amniotic.studio", "password": PASSWORD,
                                      "csrf_token": csrf_token(client, "/staff/login")})
    page = client.get("/staff/2fa").get_data(as_text=True)
    secret = re.search(r'data-secret="([A-Z2-7]+)"', page).group(1)
    code = totp.code_at(secret, totp.step_of(time.time()))
    response = client.post("/staff/2fa", data={"code": code,
                                               "csrf_token": csrf_token(client, "/staff/2fa")})
    assert response.status_code == 302
    db.session.refresh(user)
    assert user.totp_secret == secret


def test_idle_session_ends(client, app):
    make_user("ana@amniotic.studio", "analyst")
    login(client, "ana@amniotic.studio")
    assert client.get("/probe").status_code == 200
    with client.session_transaction() as session:
        session["seen_at"] -= app.config["TRACKER_SESSION_IDLE_MINUTES"] * 60 + 1
    assert client.get("/probe").status_code == 302


def test_absolute_session_limit(client, app):
    make_user("ana@amniotic.studio", "analyst")
    login(client, "ana@amniotic.studio")
    with client.session_transaction() as session:
        session["authenticated_at"] -= app.config["TRACKER_SESSION_MAX_HOURS"] * 3600 + 1
    assert client.get("/probe").status_code == 302


def test_sensitive_action_asks_for_the_password_again(client, app):
    from tests.helpers import csrf_token
    from tracker.web.auth import recent_auth_required

    @app.get("/sensitive")
    @recent_auth_required
    def sensitive():
        return "done"

    make_user("ana@amniotic.studio", "analyst")
    login(client, "ana@amniotic.studio")
    assert client.get("/sensitive").data == b"done"
    with client.session_transaction() as session:
        session["authenticated_at"] -= app.config["TRACKER_REAUTH_MINUTES"] * 60 + 1
    response = client.get("/sensitive")
    assert "/staff/reauth" in response.headers["Location"]
    confirmed = client.post("/staff/reauth?next=/sensitive", data={
        "password": PASSWORD, "csrf_token": csrf_token(client, "/staff/reauth")})
    assert confirmed.headers["Location"] == "/sensitive"
    assert client.get("/sensitive").data == b"done"
