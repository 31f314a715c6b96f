"""Privacy commands: `register export`, `retention run|status`, `audit verify`."""

from __future__ import annotations

import sys

import click
from flask import Flask, current_app
from flask.cli import AppGroup

from tracker.clock import utcnow
from tracker.domain.register import RegisterSettingsError
from tracker.services import audit, retention
from tracker.services import register as register_views

register_group = AppGroup("register", help="The register of processing (GDPR Art. 30).")
retention_group = AppGroup("retention", help="Delete or anonymise data past its period.")
audit_group = AppGroup("audit", help="The staff audit log.")


def init_app(app: Flask) -> None:
    app.cli.add_command(register_group)
    app.cli.add_command(retention_group)
    app.cli.add_command(audit_group)


@register_group.command("export")
@click.option("--format", "fmt", type=click.Choice(["csv", "md"]), default="md",
              show_default=True, help="CSV (one processing per row) or Markdown.")
@click.option("--output", type=click.File("w", encoding="utf-8"), default="-",
              help="File to write (default: standard output).")
def export_register(fmt: str, output: click.utils.LazyFile) -> None:
    """Export the register of processing, with the configured retention periods."""
    render = register_views.to_csv if fmt == "csv" else register_views.to_markdown
    output.write(render(current_app.config))


@retention_group.command("run")
@click.option("--dry-run", is_flag=True, help="Count what would go; change nothing.")
@click.option("--batch-size", type=click.IntRange(1, 1_000_000), default=None,
              help="Rows per transaction (default: TRACKER_RETENTION_BATCH_SIZE).")
def run_retention(dry_run: bool, batch_size: int | None) -> None:
    """Apply the register's retention periods (schedule it daily: docs/operations.md)."""
    try:
        report = retention.run(now=utcnow(), dry_run=dry_run, batch_size=batch_size)
    except RegisterSettingsError as exc:
        raise click.ClickException(str(exc)) from exc
    verb = "would delete or anonymise" if dry_run else "deleted or anonymised"
    click.echo(f"retention run #{report.run_id}{' (dry run)' if dry_run else ''}:")
    for outcome in report.outcomes:
        rows = ", ".join(f"{table} {n}" for table, n in outcome.rows.items())
        click.echo(f"  {outcome.key:<36} before {outcome.cutoff:%Y-%m-%d %H:%M}  {rows}")
    total = sum(report.by_table().values())
    click.echo(f"{verb} {total} row(s) in total")


@retention_group.command("status")
def retention_status() -> None:
    """Print when retention last succeeded; exit 1 when that is more than 48 hours ago."""
    status = retention.status(now=utcnow())
    click.echo(status.message)
    if status.overdue:
        sys.exit(1)


@audit_group.command("verify")
@click.option("--expect", default=None, metavar="HASH",
              help="A head hash printed earlier: it must still be in the log.")
def verify_audit(expect: str | None) -> None:
    """Check every entry's HMAC chain; print the head hash to keep elsewhere."""
    result = audit.verify(expect)
    for problem in result.problems:
        click.echo(f"{problem.kind.upper()}: {problem.message}", err=True)
    click.echo(f"entries: {result.entries} (from #{result.first_seq or 0})")
    click.echo(f"head: {result.head_seq} {result.head_hash}")
    if not result.ok:
        click.echo("audit log verification FAILED", err=True)
        sys.exit(1)
    click.echo("audit log OK")
