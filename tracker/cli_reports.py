"""Commands for the reports: `demo-data` (fill a database with demo traffic) and
`report-timings` (how long each report takes over the stored data)."""

from __future__ import annotations

import statistics
import time
from datetime import timedelta

import click
from flask import Flask, current_app
from flask.cli import with_appcontext

from tracker.clock import utcnow
from tracker.domain.reports import DateRange, ReportQuery, auto_granularity, local_date, zone
from tracker.services import demo_data, reports, runtime

# What `make run` loads into an empty database: enough to fill every report, in ~20 s.
DEFAULT_DAYS = 90
DEFAULT_VISITS = 3000


def init_app(app: Flask) -> None:
    app.cli.add_command(demo_data_command)
    app.cli.add_command(report_timings_command)


@click.command("demo-data")
@click.option("--days", type=click.IntRange(1, 1000), default=DEFAULT_DAYS, show_default=True,
              help="Spread the visits over this many days, up to now.")
@click.option("--visits", type=click.IntRange(1, 2_000_000), default=DEFAULT_VISITS,
              show_default=True, help="How many visits to generate.")
@click.option("--seed", type=int, default=1, show_default=True,
              help="Random seed: the same seed gives the same traffic.")
@click.option("--if-empty", is_flag=True,
              help="Do nothing when the database already holds pageviews (for `make run`).")
@with_appcontext
def demo_data_command(days: int, visits: int, seed: int, if_empty: bool) -> None:
    """Fill the database with realistic, clearly marked demo traffic (through ingest)."""
    if if_empty and reports.has_pageviews():
        click.echo("demo-data: the database already holds pageviews; nothing added")
        return
    ingest = runtime.ingest()
    if not (ingest.geoip.asn_enabled and ingest.geoip.city_enabled):
        click.echo("demo-data: TRACKER_GEOIP_ASN_DB / TRACKER_GEOIP_CITY_DB are not set, so "
                   "the organisations and locations reports stay empty (the Makefile points "
                   "them at tests/data/geoip)", err=True)
    started = time.perf_counter()
    try:
        result = demo_data.generate(ingest, days=days, visits=visits, now=utcnow(),
                                    timezone=current_app.config["TRACKER_TIMEZONE"], seed=seed,
                                    progress=click.echo)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"demo-data: stored {result.visits} visits, {result.pageviews} pageviews and "
               f"{result.consents} consent decisions in {time.perf_counter() - started:.1f} s. "
               "They are marked as demo data (their consents point to banner version "
               f"{demo_data.DEMO_BANNER_SHA256[:12]}…) and the dashboard says so.")


@click.command("report-timings")
@click.option("--days", type=click.IntRange(1, 1000), default=DEFAULT_DAYS, show_default=True,
              help="Time the reports over the last DAYS days.")
@click.option("--repeat", type=click.IntRange(1, 50), default=3, show_default=True,
              help="Run each report this many times; the median is shown.")
@with_appcontext
def report_timings_command(days: int, repeat: int) -> None:
    """Time every report over the stored data (median of a few runs)."""
    cfg = current_app.config
    now = utcnow()
    today = local_date(now, zone(cfg["TRACKER_TIMEZONE"]))
    period = DateRange(today - timedelta(days=days - 1), today)
    query = ReportQuery(range=period, granularity=auto_granularity(period),
                        timezone=cfg["TRACKER_TIMEZONE"], now=now,
                        section_rules=tuple(runtime.ingest().section_rules))
    overview = reports.run("overview", query)
    pageviews = next(r["value"] for r in overview.tables["summary"].rows
                     if r["metric"] == "pageviews")
    click.echo(f"{pageviews} pageviews from {period.start} to {period.end} "
               f"({cfg['SQLALCHEMY_DATABASE_URI'].split(':', 1)[0]}), median of {repeat}:")
    for name in reports.REPORTS:
        times = []
        for _ in range(repeat):
            started = time.perf_counter()
            reports.run(name, query)
            times.append(time.perf_counter() - started)
        click.echo(f"  {name:<11} {statistics.median(times) * 1000:8.1f} ms")
