"""Command-line interface: `flask --app tracker <command>` or the `tracker` script."""

from __future__ import annotations

import sys
import time

import click
from flask import Flask, current_app
from flask.cli import AppGroup, FlaskGroup, with_appcontext

from tracker import cli_reports
from tracker.cli_mail import init_app as init_mail_cli
from tracker.cli_privacy import init_app as init_privacy_cli
from tracker.cli_rollups import init_app as init_rollups_cli
from tracker.clock import utcnow
from tracker.domain.roles import ROLES
from tracker.services import runtime, staff

users = AppGroup("users", help="Staff accounts and their roles.")
tokens = AppGroup("tokens", help="API tokens for the JSON/CSV reports.")


def init_app(app: Flask) -> None:
    app.cli.add_command(ingest_command)
    app.cli.add_command(users)
    app.cli.add_command(tokens)
    cli_reports.init_app(app)
    init_privacy_cli(app)
    init_mail_cli(app)
    init_rollups_cli(app)


@click.command("ingest")
@click.option("--once", is_flag=True, help="Drain the spool once and exit.")
@click.option("--interval", type=float, default=0.5, show_default=True,
              help="Seconds between drains.")
@with_appcontext
def ingest_command(once: bool, interval: float) -> None:
    """Move spooled events into the database (when web processes do not do it themselves)."""
    service = runtime.ingest()
    while True:
        count = service.drain()
        runtime.refresh_rollups(current_app._get_current_object())
        if once:
            click.echo(f"stored {count} events")
            return
        time.sleep(interval)


def _read_password() -> str:
    if not sys.stdin.isatty():
        return sys.stdin.readline().rstrip("\n")
    return click.prompt("Password", hide_input=True, confirmation_prompt=True)


def _fail_on_staff_error(action):  # type: ignore[no-untyped-def]
    try:
        return action()
    except staff.StaffError as exc:
        raise click.ClickException(str(exc)) from exc


@users.command("create")
@click.argument("email")
@click.option("--role", type=click.Choice(list(ROLES)), required=True)
def create_user(email: str, role: str) -> None:
    """Create an account; the password is prompted for, or read from stdin."""
    password = _read_password()
    user = _fail_on_staff_error(lambda: staff.create_user(email, password, role, now=utcnow()))
    click.echo(f"created {user.email} ({user.role})")


@users.command("set-role")
@click.argument("email")
@click.argument("role", type=click.Choice(list(ROLES)))
def set_role(email: str, role: str) -> None:
    """Change an account's role; its open sessions end."""
    _fail_on_staff_error(lambda: staff.set_role(staff.find_user(email), role))
    click.echo(f"{email} is now {role}")


@users.command("disable")
@click.argument("email")
def disable(email: str) -> None:
    """Disable an account; its open sessions and tokens stop working."""
    _fail_on_staff_error(lambda: staff.set_active(staff.find_user(email), False))
    click.echo(f"{email} is disabled")


@users.command("list")
def list_users() -> None:
    """List accounts with their roles."""
    from sqlalchemy import select

    from tracker.extensions import db
    from tracker.models import User

    for user in db.session.scalars(select(User).order_by(User.email)):
        click.echo(f"{user.email}\t{user.role}\t{'active' if user.active else 'disabled'}")


@tokens.command("create")
@click.argument("email")
@click.option("--name", default="api", show_default=True, help="What the token is for.")
def create_token(email: str, name: str) -> None:
    """Create an API token for an account and print it (it is shown only once)."""
    user = _fail_on_staff_error(lambda: staff.find_user(email))
    click.echo(staff.create_token(user, name, now=utcnow()))


def main() -> None:
    """Entry point of the `tracker` console script."""
    from tracker import create_app

    FlaskGroup(create_app=create_app)()
