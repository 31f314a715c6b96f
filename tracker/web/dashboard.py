"""The staff dashboard: one server-rendered page per report, in French or English."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, g, redirect, render_template, request, session, url_for
from werkzeug.exceptions import NotFound

from tracker.clock import utcnow
from tracker.domain.reports import (
    DURATION_LABELS,
    ENTRANCE,
    EXIT,
    FILTER_KEYS,
    OTHER,
    PRESETS,
    ReportError,
    Table,
)
from tracker.domain.roles import REPORT_READERS
from tracker.services import reports, retention
from tracker.web.auth import roles_required
from tracker.web.reports_api import parse_query

bp = Blueprint("dashboard", __name__, url_prefix="/dashboard")

LANGS = ("fr", "en")
# Reports with a page of their own; the others share the generic template.
OWN_TEMPLATES = {"overview", "flows", "duration", "consent", "realtime", "locations"}
# Each table's title, and what a click on a row does when it does not set a filter.
MESSAGES: dict[str, tuple[str, str]] = {
    # reports
    "overview": ("Vue d'ensemble", "Overview"),
    "sections": ("Sections", "Sections"),
    "pages": ("Pages", "Pages"),
    "flows": ("Parcours", "Flows"),
    "duration": ("Durées", "Duration"),
    "sources": ("Sources", "Sources"),
    "technology": ("Technologie", "Technology"),
    "networks": ("Réseaux", "Networks"),
    "locations": ("Lieux", "Locations"),
    "consent": ("Consentement", "Consent"),
    "realtime": ("Temps réel", "Realtime"),
    # tables
    "summary": ("Synthèse", "Summary"),
    "series": ("Évolution", "Over time"),
    "top_sections": ("Sections les plus vues", "Most popular sections"),
    "journeys": ("Parcours les plus fréquents", "Most frequent journeys"),
    "visit_durations": ("Durée des visites", "Visit duration"),
    "engaged_per_page": ("Temps d'attention par page vue", "Engaged time per pageview"),
    "engaged_by_section": ("Temps d'attention par section", "Engaged time by section"),
    "visits_by_entry_section": ("Durée des visites par section d'entrée",
                                "Visit duration by entry section"),
    "top": ("Pages les plus vues", "Top pages"),
    "entry": ("Pages d'entrée", "Entry pages"),
    "exit": ("Pages de sortie", "Exit pages"),
    "came_from": ("Venus de", "Came from"),
    "went_to": ("Partis vers", "Went to"),
    "channels": ("Canaux", "Channels"),
    "referrers": ("Sites référents", "Referring sites"),
    "search_engines": ("Moteurs de recherche", "Search engines"),
    "utm_campaigns": ("Campagnes UTM", "UTM campaigns"),
    "utm_sources": ("Sources UTM", "UTM sources"),
    "utm_mediums": ("Supports UTM", "UTM mediums"),
    "browsers": ("Navigateurs", "Browsers"),
    "browser_versions": ("Versions des navigateurs", "Browser versions"),
    "os": ("Systèmes d'exploitation", "Operating systems"),
    "devices": ("Appareils", "Devices"),
    "organisations": ("Organisations (AS)", "Organisations (AS)"),
    "domains": ("Domaines (DNS inverse)", "Domains (reverse DNS)"),
    "countries": ("Pays", "Countries"),
    "cities": ("Villes", "Cities"),
    "methods": ("Réponses au bandeau", "Banner answers"),
    "purposes": ("Finalités acceptées", "Purposes granted"),
    "pages_now": ("Pages consultées", "Pages being viewed"),
    "minutes": ("Pages vues par minute", "Pageviews per minute"),
    # columns and metrics
    "metric": ("Indicateur", "Metric"),
    "value": ("Valeur", "Value"),
    "previous": ("Période précédente", "Previous period"),
    "change": ("Évolution", "Change"),
    "visitors": ("Visiteurs uniques", "Unique visitors"),
    "visits": ("Visites", "Visits"),
    "pageviews": ("Pages vues", "Pageviews"),
    "pages_per_visit": ("Pages par visite", "Pages per visit"),
    "bounce_rate": ("Taux de rebond", "Bounce rate"),
    "avg_visit_duration_s": ("Durée moyenne des visites", "Average visit duration"),
    "avg_engaged_per_page_s": ("Attention moyenne par page", "Average engaged time per page"),
    "bucket": ("Période", "Period"),
    "section": ("Section", "Section"),
    "share": ("Part", "Share"),
    "entries": ("Entrées", "Entries"),
    "engaged_s": ("Temps d'attention total", "Total engaged time"),
    "avg_engaged_s": ("Attention moyenne", "Average engaged time"),
    "journey": ("Parcours", "Journey"),
    "path": ("Page", "Page"),
    "title": ("Titre", "Title"),
    "exits": ("Sorties", "Exits"),
    "exit_rate": ("Taux de sortie", "Exit rate"),
    "label": ("Page ou section", "Page or section"),
    "count": ("Nombre", "Count"),
    "total": ("Total", "Total"),
    "domain": ("Domaine", "Domain"),
    "engine": ("Moteur", "Engine"),
    "campaign": ("Campagne", "Campaign"),
    "source": ("Source", "Source"),
    "medium": ("Support", "Medium"),
    "browser": ("Navigateur", "Browser"),
    "version": ("Version", "Version"),
    "device": ("Appareil", "Device"),
    "organisation": ("Organisation", "Organisation"),
    "asn": ("AS", "AS"),
    "country": ("Pays", "Country"),
    "city": ("Ville", "City"),
    "method": ("Réponse", "Answer"),
    "decisions": ("Réponses", "Answers"),
    "purpose": ("Finalité", "Purpose"),
    "granted": ("Acceptée", "Granted"),
    "rate": ("Taux", "Rate"),
    "accept_all": ("Tout accepter", "Accept all"),
    "refuse_all": ("Tout refuser", "Refuse all"),
    "custom": ("Personnaliser", "Customise"),
    "accept_all_rate": ("Taux « tout accepter »", "Accept-all rate"),
    "refuse_all_rate": ("Taux « tout refuser »", "Refuse-all rate"),
    "custom_rate": ("Taux « personnaliser »", "Customise rate"),
    "analytics_rate": ("Taux mesure d'audience", "Analytics rate"),
    "location_rate": ("Taux localisation", "Location rate"),
    "marketing_rate": ("Taux marketing", "Marketing rate"),
    "methods_over_time": ("Réponses au fil du temps", "Answers over time"),
    "purposes_over_time": ("Finalités acceptées au fil du temps", "Purposes granted over time"),
    "analytics": ("Mesure d'audience", "Analytics"),
    "location": ("Localisation", "Location"),
    "marketing": ("Marketing", "Marketing"),
    "minute": ("Minute", "Minute"),
    "page": ("Page", "Page"),
    # interface
    "presets": ("Période", "Period"),
    "preset.today": ("Aujourd'hui", "Today"),
    "preset.yesterday": ("Hier", "Yesterday"),
    "preset.7d": ("7 jours", "7 days"),
    "preset.30d": ("30 jours", "30 days"),
    "preset.90d": ("90 jours", "90 days"),
    "preset.month": ("Ce mois-ci", "This month"),
    "preset.last_month": ("Mois dernier", "Last month"),
    "preset.12mo": ("12 mois", "12 months"),
    "from": ("Du", "From"),
    "to": ("au", "To"),
    "granularity": ("Par", "By"),
    "granularity.auto": ("auto", "auto"),
    "granularity.hour": ("heure", "hour"),
    "granularity.day": ("jour", "day"),
    "granularity.week": ("semaine", "week"),
    "granularity.month": ("mois", "month"),
    "apply": ("Appliquer", "Apply"),
    "filters": ("Filtres", "Filters"),
    "add_filter": ("Ajouter un filtre", "Add a filter"),
    "remove_filter": ("Retirer le filtre", "Remove filter"),
    "clear_filters": ("Tout retirer", "Clear all"),
    "filter_value": ("Valeur", "Value"),
    "csv": ("CSV", "CSV"),
    "download_csv": ("Télécharger en CSV", "Download as CSV"),
    "no_data": ("Aucune donnée sur cette période.", "No data for this period."),
    "demo_notice": ("Données de démonstration : ces chiffres ont été générés par "
                    "« flask demo-data » et ne décrivent aucun visiteur réel.",
                    "Demo data: these figures were generated by `flask demo-data` and "
                    "describe no real visitor."),
    "vs_previous": ("par rapport au", "compared with"),
    "chart": ("Graphique", "Chart"),
    "reports": ("Rapports", "Reports"),
    "focus": ("Page étudiée", "Page studied"),
    "focus_section": ("Section étudiée", "Section studied"),
    "flow_by": ("Par", "By"),
    "flow_help": ("Cliquez une page ou une section pour suivre le parcours, de l'entrée à "
                  "la sortie.", "Click a page or section to follow the flow, from entry to "
                  "exit."),
    "flows_link": ("parcours", "flows"),
    "follow": ("Suivre", "Follow"),
    "location_notice": ("Seules les visites dont le visiteur a accepté la localisation sont "
                        "comptées ici : {n} visites sur {total} ({rate}).",
                        "Only visits whose visitor agreed to location are counted here: {n} "
                        "of {total} visits ({rate})."),
    "consent_notice": ("Les réponses au bandeau ne portent ni page, ni source, ni navigateur : "
                       "les filtres ne s'appliquent pas à ce rapport.",
                       "Banner answers carry no page, source or browser: the filters do not "
                       "apply to this report."),
    "networks_notice": ("Agrégats par organisation et par domaine, chacun affiché seulement "
                        "si {n} visiteurs au moins en viennent : aucune adresse IP, aucun nom "
                        "d'hôte, aucun réseau d'une seule personne n'est affiché.",
                        "Aggregated by organisation and domain, each shown only when at least "
                        "{n} visitors came from it: no IP address, host name or one person's "
                        "network is shown."),
    "realtime_notice": ("Visiteurs actifs ces {n} dernières minutes. La page se met à jour "
                        "toutes les 30 secondes ; les filtres s'appliquent, pas les dates.",
                        "Visitors active in the last {n} minutes. The page refreshes every 30 "
                        "seconds; filters apply, dates do not."),
    "active_visitors": ("Visiteurs actifs", "Active visitors"),
    "at_a_glance": ("En un coup d'œil", "At a glance"),
    "how_long": ("Combien de temps restent-ils ?", "How long do they stay?"),
    "where_go": ("Où vont-ils ?", "Where do they go?"),
    "what_popular": ("Quelles sections ?", "Which sections?"),
    "previous_period": ("Période précédente : {start} – {end}", "Previous period: {start} – {end}"),
    "all_tables": ("Tableaux", "Tables"),
    "duration_col": ("Durée", "Duration"),
    "channel": ("Canal", "Channel"),
    "last_30_minutes": ("30 dernières minutes", "Last 30 minutes"),
}
# Values the reports use as category names, shown translated (drill-down keeps the value).
VALUE_LABELS: dict[str, tuple[str, str]] = {
    ENTRANCE: ("(début de visite)", "(start of visit)"),
    EXIT: ("(sortie du site)", "(left the site)"),
    OTHER: ("(autres)", "(others)"),
    "(unknown)": ("(inconnu)", "(unknown)"),
    "(direct)": ("(accès direct)", "(direct)"),
    "Direct": ("Accès direct", "Direct"),
    "Search": ("Moteurs de recherche", "Search engines"),
    "Social": ("Réseaux sociaux", "Social networks"),
    "Email": ("E-mail", "E-mail"),
    "Paid": ("Publicité payante", "Paid advertising"),
    "Referral": ("Sites référents", "Referring sites"),
    "Campaign": ("Autres campagnes", "Other campaigns"),
    "accept_all": ("Tout accepter", "Accept all"),
    "refuse_all": ("Tout refuser", "Refuse all"),
    "custom": ("Personnaliser", "Customise"),
    "analytics": ("Mesure d'audience", "Analytics"),
    "location": ("Localisation", "Location"),
    "marketing": ("Marketing", "Marketing"),
    "desktop": ("Ordinateur", "Desktop"),
    "mobile": ("Mobile", "Mobile"),
    "tablet": ("Tablette", "Tablet"),
    "other": ("Autre", "Other"),
}


def _lang() -> str:
    asked = request.args.get("lang")
    if asked in LANGS:
        session["dashboard_lang"] = asked
        return asked
    remembered = session.get("dashboard_lang")
    if remembered in LANGS:
        return remembered
    return request.accept_languages.best_match(LANGS, default="fr") or "fr"


def translate(key: str, **values: Any) -> str:
    """The message `key` in the page's language (the key itself when unknown)."""
    pair = MESSAGES.get(key)
    text = key if pair is None else pair[0 if g.get("lang", "fr") == "fr" else 1]
    return text.format(**values) if values else text


def display(value: Any) -> str:
    """A row label as shown: category names are translated, other values kept as they are."""
    if value is None:
        return "—"
    pair = VALUE_LABELS.get(value) if isinstance(value, str) else None
    if pair is None:
        return str(value)
    return pair[0 if g.get("lang", "fr") == "fr" else 1]


def _group(number: float, decimals: int) -> str:
    text = f"{number:,.{decimals}f}"
    if g.get("lang", "fr") == "fr":
        text = text.replace(",", "\u202f").replace(".", ",")
    return text


def format_value(value: Any, kind: str = "int") -> str:
    """A figure written for people, in the page's language."""
    if value is None:
        return "—"
    if kind == "int":
        return _group(value, 0)
    if kind == "number":
        return _group(value, 2)
    if kind in ("rate", "change"):
        sign = "+" if kind == "change" and value > 0 else ""
        return f"{sign}{_group(value * 100, 1)}\u00a0%"
    if kind == "seconds":
        return format_duration(value)
    if kind == "path" and isinstance(value, list):
        return " → ".join(display(v) for v in value)
    return str(value)


def format_duration(seconds: float) -> str:
    """`42 s`, `3 min 05 s`, `1 h 02 min`."""
    total = int(round(seconds))
    if total < 60:
        return f"{total}\u00a0s"
    if total < 3600:
        return f"{total // 60}\u00a0min\u00a0{total % 60:02d}\u00a0s"
    return f"{total // 3600}\u00a0h\u00a0{total % 3600 // 60:02d}\u00a0min"


def url_with(**changes: Any) -> str:
    """The current page's URL with some parameters changed (None removes one)."""
    args = {k: v for k, v in request.args.to_dict().items() if k not in ("lang", "name")}
    for key, value in changes.items():
        if value is None:
            args.pop(key, None)
        else:
            args[key] = value
    return url_for(request.endpoint or "dashboard.index", **(request.view_args or {}), **args)


def report_url(name: str, **changes: Any) -> str:
    """Another report's page, keeping the range and filters."""
    args = {k: v for k, v in request.args.to_dict().items()
            if k not in ("lang", "focus", "by", "table", "format", "limit")}
    args.update({k: v for k, v in changes.items() if v is not None})
    if name == "overview":
        return url_for("dashboard.index", **args)
    return url_for("dashboard.report", name=name, **args)


def csv_url(name: str, table: str) -> str:
    args = {k: v for k, v in request.args.to_dict().items() if k != "lang"}
    args.update(format="csv", table=table, limit="1000")
    return url_for("reports_api.report", name=name, **args)


def bar_width(value: float | None, table: Table, key: str) -> float:
    """Width (0-100) of a row's bar, relative to the largest value of the column."""
    largest = max((r.get(key) or 0 for r in table.rows), default=0)
    return 0.0 if not largest or not value else round(100 * value / largest, 1)


@bp.before_request
def set_language() -> None:
    g.lang = _lang()


@bp.context_processor
def helpers() -> dict[str, Any]:
    return {"t": translate, "fmt": format_value, "display": display, "url_with": url_with,
            "report_url": report_url, "csv_url": csv_url, "bar_width": bar_width}


@bp.get("/", endpoint="index")
@roles_required(REPORT_READERS)
def index() -> Any:
    return _page("overview")


@bp.get("/<name>")
@roles_required(REPORT_READERS)
def report(name: str) -> Any:
    if name not in reports.REPORTS or name == "overview":
        raise NotFound()
    return _page(name)


def _page(name: str) -> Any:
    if "fk" in request.args:
        # The "add a filter" form names the filter in `fk` and its value in `fv`.
        key, value = request.args.get("fk"), (request.args.get("fv") or "").strip()
        changes = {key: value or None} if key in FILTER_KEYS else {}
        return redirect(url_with(fk=None, fv=None, **changes))
    error = None
    try:
        query, preset = parse_query(request.args)
    except ReportError as exc:
        error = exc
        query, preset = parse_query({})
    result = reports.run(name, query)
    template = name if name in OWN_TEMPLATES else "report"
    return render_template(
        f"staff/dashboard/{template}.html", report=result, query=query, preset=preset,
        error=error, demo=reports.has_demo_data(), reports=list(reports.REPORTS),
        presets=PRESETS, filter_keys=FILTER_KEYS, duration_labels=DURATION_LABELS,
        current=name, lang=g.lang,
        # Staff see at a glance whether the retention job still runs (warning after 48 h).
        status=retention.status(now=utcnow()) if name == "overview" else None)
