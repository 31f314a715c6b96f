"""Command-line interface: `flask --app tracker <command>` or the `tracker` script."""

from __future__ import annotations

import time

import click
from flask import Flask
from flask.cli import FlaskGroup, with_appcontext

from tracker.services import runtime


def init_app(app: Flask) -> None:
    app.cli.add_command(ingest_command)


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
        if once:
            click.echo(f"stored {count} events")
            return
        time.sleep(interval)


def main() -> None:
    """Entry point of the `tracker` console script."""
    from tracker import create_app

    FlaskGroup(create_app=create_app)()
