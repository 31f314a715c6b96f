"""Mail commands: `flask --app tracker campaigns ...` and `flask --app tracker mail ...`."""

from __future__ import annotations

import click
from flask import Flask
from flask.cli import AppGroup

from tracker.clock import utcnow
from tracker.domain.mail import CAMPAIGN_SENT, DRAFT, CampaignReport, FormInvalid
from tracker.services import campaigns, newsletter
from tracker.services.mailer import MailError

campaigns_group = AppGroup("campaigns", help="Newsletter campaigns: send, resume, report.")
mail_group = AppGroup("mail", help="Newsletter addresses: record a stop, import.")


def _echo_report(report: CampaignReport) -> None:
    for name, value in report.as_dict().items():
        if name != "open_rate":
            click.echo(f"{name}\t{value}")


@campaigns_group.command("send")
@click.argument("campaign_id", type=int)
@click.option("--retry-unknown", is_flag=True,
              help="Also send the copies whose outcome is unknown because a run was killed "
                   "mid-send; some of those people may then get it twice.")
def send(campaign_id: int, retry_unknown: bool) -> None:
    """Send a tested campaign, or resume one that stopped; nobody gets a copy twice."""
    campaign = campaigns.get(campaign_id)
    if campaign is None:
        raise click.ClickException(f"no campaign {campaign_id}")
    if campaign.status == DRAFT:
        try:
            count = campaigns.start(campaign, None, now=utcnow())
        except campaigns.CampaignError as exc:
            raise click.ClickException(str(exc)) from exc
        click.echo(f"campaign {campaign_id}: sending to {count} subscribers")
    elif campaign.status == CAMPAIGN_SENT and not retry_unknown:
        click.echo(f"campaign {campaign_id} was already sent")
        _echo_report(campaigns.report(campaign_id))
        return
    try:
        result = campaigns.deliver(campaign_id, retry_unknown=retry_unknown)
    except (MailError, campaigns.DeliveryInterrupted) as exc:
        raise click.ClickException(f"{exc}; run this command again to resume") from exc
    if result.unknown_before:
        click.echo(f"in flight when the previous run stopped: {result.unknown_before} "
                   "(outcome unknown; not sent again, --retry-unknown sends them)")
    click.echo(f"this run: {result.accepted} accepted, {result.failed} failed, "
               f"{result.deferred} deferred, {result.skipped} skipped")
    _echo_report(campaigns.report(campaign_id))
    if not result.finished:
        raise click.ClickException("copies are still pending (deferred by the server); run "
                                   "this command again later")


@campaigns_group.command("report")
@click.argument("campaign_id", type=int)
def report(campaign_id: int) -> None:
    """Print a campaign's figures."""
    if campaigns.get(campaign_id) is None:
        raise click.ClickException(f"no campaign {campaign_id}")
    _echo_report(campaigns.report(campaign_id))


@campaigns_group.command("list")
def list_campaigns() -> None:
    """List campaigns with their status."""
    for campaign in campaigns.all_campaigns():
        click.echo(f"{campaign.id}\t{campaign.status}\t{campaign.subject}")


@mail_group.command("stop")
@click.argument("email")
def stop(email: str) -> None:
    """Record a "stop" (a reply, a call): all marketing to EMAIL ends now."""
    try:
        was = newsletter.stop(None, email, now=utcnow())
    except FormInvalid as exc:
        raise click.ClickException(f"{email!r} is not an e-mail address") from exc
    click.echo("stopped: " + ("the subscriber was erased; " if was else "") +
               "the address is on the opposition list")


@mail_group.command("import")
@click.argument("path", type=click.File())
@click.option("--proof", required=True,
              help="Where and how these people consented (kept as the proof's text).")
def import_addresses(path: click.File, proof: str) -> None:
    """Import consenting addresses, one per line; the opposition list is honoured."""
    lines = [line.strip() for line in path if line.strip()]  # type: ignore[attr-defined]
    result = newsletter.import_subscribers(lines, proof=proof, now=utcnow())
    click.echo(f"added {result.added}, already subscribed {result.existing}, on the "
               f"opposition list {result.opposed}, invalid {result.invalid}")


def init_app(app: Flask) -> None:
    app.cli.add_command(campaigns_group)
    app.cli.add_command(mail_group)
