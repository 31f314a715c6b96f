"""The banner script and a demo of the studio's site that embeds it."""

from __future__ import annotations

from flask import Blueprint, Response, render_template, request

from tracker.services import runtime
from tracker.web.middleware import SITE_CSP

bp = Blueprint("site", __name__)

# A small stand-in for amniotic.studio: sections, projects and a journal to navigate.
DEMO_PAGES: dict[str, tuple[str, str]] = {
    "/": ("Amniotic — studio de design", "Studio de design graphique et numérique à Saint-Junien."),
    "/projets/": ("Projets", "Une sélection de nos réalisations."),
    "/projets/identite-tannerie": ("Identité — Tannerie de St-Junien", "Identité visuelle."),
    "/projets/site-ceramiques": ("Site — Céramiques du Limousin", "Site e-commerce."),
    "/projets/affiches-festival": ("Affiches — Festival Ganterie", "Série d'affiches."),
    "/studio/": ("Le studio", "Qui nous sommes, comment nous travaillons."),
    "/journal/": ("Journal", "Notes de l'atelier."),
    "/journal/typographie-limousine": ("Typographie limousine", "Un article du journal."),
    "/contact/": ("Contact", "Écrivez-nous."),
}


@bp.get("/static/consent-banner.js")
def banner_script() -> Response:
    """Serve the banner from memory: exactly the bytes whose hash consent proofs record."""
    banner = runtime.banner()
    response = Response(banner.content, mimetype="text/javascript")
    response.set_etag(banner.sha256)
    response.headers["Cache-Control"] = "public, max-age=300"
    response.headers["Access-Control-Allow-Origin"] = "*"
    return response.make_conditional(request)


def demo() -> Response:
    page = request.path
    title, lead = DEMO_PAGES[page]
    response = Response(render_template("site/demo.html", page=page, title=title, lead=lead,
                                        pages=DEMO_PAGES))
    response.headers["Content-Security-Policy"] = SITE_CSP
    return response


# One route per page rather than a catch-all, which would also answer GET on the API's paths
# with a 404 where their answer is a 405 that says which methods they take.
for _page in DEMO_PAGES:
    bp.add_url_rule(_page, "demo", demo, methods=["GET"])
