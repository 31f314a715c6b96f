"""`flask --app tracker rollups refresh`: bring the reports' rollups up to date."""

from __future__ import annotations

import click
from flask import Flask
from flask.cli import AppGroup

from tracker.services import rollups

group = AppGroup("rollups", help="The reports' daily rollups (tracker/services/rollups.py).")


def init_app(app: Flask) -> None:
    app.cli.add_command(group)


@group.command("refresh")
@click.option("--budget", type=float, default=None,
              help="Stop after about this many seconds (run again to go on).")
@click.option("--rebuild", is_flag=True, help="Forget every rollup and compute all days again.")
def refresh_command(budget: float | None, rebuild: bool) -> None:
    """Recompute the days changed since the last refresh (everything the first time).

    Idempotent and safe while the collector writes; the drainer also runs it every minute.
    """
    if rebuild:
        rollups.invalidate()
    result = rollups.refresh(budget_seconds=budget, progress=click.echo)
    state = "complete" if result.complete else "still rebuilding (run it again)"
    if result.skipped:
        state = "another refresh is running"
    click.echo(f"rollups: {result.days} days computed in {result.seconds:.1f} s; {state}")
