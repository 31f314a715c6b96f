"""Traffic that is not people: referrer spam and automated clients. Pure rules, no I/O.

Such visits are stored but flagged like bots (`visits.is_bot`), so every report leaves them
out while the raw rows stay available to the data protection officer.

Referrer spam: sites that fake visits (or send bots that run the banner) so that their domain
shows up among a site's referrers and the curious click it. The built-in list holds
long-standing offenders named in public referrer-spam blocklists (Matomo's
referrer-spam-list, among others); TRACKER_SPAM_REFERRERS adds more. A listed domain covers
its subdomains (`semalt.com` covers `x.semalt.com`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

SPAM_REFERRERS: frozenset[str] = frozenset({
    "semalt.com", "buttons-for-website.com", "buttons-for-your-website.com", "darodar.com",
    "best-seo-offer.com", "best-seo-solution.com", "blackhatworth.com", "hulfingtonpost.com",
    "priceg.com", "savetubevideo.com", "kambasoft.com", "ilovevitaly.com", "ilovevitaly.ru",
    "econom.co", "free-social-buttons.com", "get-free-traffic-now.com", "4webmasters.org",
    "trafficmonetize.com", "social-buttons.com", "simple-share-buttons.com",
    "floating-share-buttons.com", "free-share-buttons.com", "o-o-6-o-o.com",
    "7makemoneyonline.com", "event-tracking.com", "success-seo.com", "video--production.com",
    "rank-checker.online", "site-auditor.online", "fix-website-errors.com",
    "website-analyzer.info", "googlsucks.com", "humanorightswatch.org", "traffic2money.com",
})
# A host name has at most 253 characters; anything longer is not one.
MAX_HOST = 253

# Clients that say what they are in their User-Agent but that ua-parser does not flag:
# crawlers, link previewers, monitors, headless browsers and HTTP libraries.
_AUTOMATION = re.compile(
    r"bot\b|bot[/_;-]|crawl|spider|slurp|scrap|fetcher|monitor|checker|preview|headless"
    r"|lighthouse|pagespeed|pingdom|uptime|phantomjs|selenium|webdriver|puppeteer|playwright"
    r"|python|curl/|wget/|java/|go-http-client|okhttp|axios/|node-fetch|httpclient|libwww"
    r"|scrapy",
    re.IGNORECASE)
# Real devices whose names contain a bot-like word.
_NOT_AUTOMATION = re.compile(r"cubot", re.IGNORECASE)


def spam_list(extra: Iterable[str] = ()) -> frozenset[str]:
    """The built-in spam domains plus `extra` (a setting), normalised like referrer hosts."""
    added = {_host(domain) for domain in extra}
    return SPAM_REFERRERS | {host for host in added if host}


def _host(name: str) -> str:
    return name.strip().rstrip(".").lower().removeprefix("www.")


def is_spam_referrer(host: str | None, spam: frozenset[str] = SPAM_REFERRERS) -> bool:
    """True when the referring host, or a domain it belongs to, is a known spam domain."""
    if not host or len(host) > MAX_HOST:
        return False
    labels = _host(host).split(".")
    return any(".".join(labels[i:]) in spam for i in range(len(labels) - 1))


def is_automated(user_agent: str) -> bool:
    """True for an empty User-Agent or one naming a crawler, monitor or HTTP library."""
    if not user_agent.strip():
        return True  # every browser sends one
    return _AUTOMATION.search(_NOT_AUTOMATION.sub("", user_agent)) is not None


def is_bot_visit(*, user_agent: str, parsed_as_bot: bool, referrer_host: str | None,
                 spam: frozenset[str] = SPAM_REFERRERS) -> bool:
    """Whether a visit is flagged like a bot's (and so left out of reports)."""
    return parsed_as_bot or is_automated(user_agent) or is_spam_referrer(referrer_host, spam)
