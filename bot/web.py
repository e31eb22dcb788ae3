"""The web app: LINE webhook, terms pages, and (without LINE credentials) the local simulator.

`gunicorn 'bot.web:create_app()'` in production; `hwbot serve` for development. Nothing happens at
import time: the factory reads settings, checks the office profiles and connects to Redis.
"""

from __future__ import annotations

import base64
import hashlib
import html
import logging
import re
from typing import Any

from flask import Flask, Response, abort, request

from bot.channels.line.api import LineMessaging
from bot.channels.line.webhook import MAX_BODY_BYTES, create_blueprint
from bot import i18n
from bot.dialog import texts as T
from bot.errors import StoreError, UnknownOfficeError
from bot.logs import configure_logging
from bot.service import BotService
from bot.settings import DEFAULT_LINE_HOST, Settings, load_settings
from bot.staff.assets import create_blueprint as staff_assets
from bot.staff.console import create_blueprint as staff_console
from bot.store.migrate import require_current_layout
from bot.store.nodes import health

log = logging.getLogger("hwbot.web")

# The terms page's only style, inline; the page's Content-Security-Policy allows exactly this text (its hash).
TERMS_STYLE = """
body{font-family:-apple-system,"Hiragino Sans","Noto Sans JP",sans-serif;line-height:1.7;margin:0;padding:16px;color:#222;max-width:720px;margin:auto}
h1{font-size:1.2rem} h2{font-size:1.05rem;margin-top:1.5em} h3{font-size:1rem;margin:1.2em 0 .3em}
p{margin:.4em 0} p.item{padding-left:1em;text-indent:-1em} .meta{color:#666;font-size:.85rem}
"""
TERMS_STYLE_HASH = "sha256-" + base64.b64encode(hashlib.sha256(TERMS_STYLE.encode()).digest()).decode()

# Security headers, by what a route serves (README, "Security headers"). No page of the app is meant to
# be framed, none runs inline script, and nothing but the simulator loads from elsewhere.
_NO_FRAMES = "frame-ancestors 'none'; base-uri 'none'"
CSP = {
    # The console and the staff API: personal data. Styles and the one script are files under /staff/static.
    "staff": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
             f"form-action 'self'; {_NO_FRAMES}",
    # The public terms page: its inline <style> by hash, nothing else.
    "terms": f"default-src 'none'; style-src '{TERMS_STYLE_HASH}'; img-src data:; form-action 'none'; {_NO_FRAMES}",
    # The simulator's page (sim.js, sim.css, its JSON calls); a LINE message may show an https image.
    "simulator": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: https:; "
                 f"connect-src 'self'; form-action 'self'; {_NO_FRAMES}",
    # JSON and plain answers (/healthz, the webhook, errors): nothing to load.
    "plain": f"default-src 'none'; {_NO_FRAMES}",
}


def route_class(path: str) -> str:
    """Which headers a path gets: `staff`, `terms`, `simulator` or `plain`."""
    if path == "/staff" or path.startswith("/staff/"):
        return "staff"
    if re.fullmatch(r"/offices/[^/]+/terms", path):
        return "terms"
    if path == "/" or path.startswith("/sim/"):
        return "simulator"
    return "plain"


def security_headers(response: Response) -> Response:
    """Every answer: no MIME sniffing, no framing, no referrer, a CSP fitting its route; no caching for
    the console and the API (personal data) nor for the dynamic answers that must never be stale."""
    kind = route_class(request.path)
    headers = response.headers
    headers["X-Content-Type-Options"] = "nosniff"
    headers["X-Frame-Options"] = "DENY"
    headers["Referrer-Policy"] = "no-referrer"
    headers["Content-Security-Policy"] = CSP[kind]
    if kind == "staff":
        headers["Cache-Control"] = "no-store"
    elif kind == "plain" or (kind == "simulator" and not request.path.startswith("/sim/static/")):
        headers.setdefault("Cache-Control", "no-store")
    return response


def create_app(settings: Settings | None = None, *, service: BotService | None = None) -> Flask:
    """Build the app; a bad variable or a broken profile stops start-up with a message naming it."""
    settings = settings or load_settings()
    configure_logging()
    if service is None:
        service = BotService(settings)
        require_current_layout(service.client)  # data of an older layout: `hwbot store migrate` first
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES
    app.extensions["hwbot"] = service

    simulator = settings.simulator_mode
    if simulator:  # no LINE credentials: the app plays LINE for itself (the simulator's own credentials)
        from bot.simulator import SIMULATOR_SECRET as secret, SIMULATOR_TOKEN as token
    else:
        secret, token = settings.line_channel_secret, settings.line_channel_access_token
    assert secret and token
    clients: dict[str, LineMessaging] = {}

    def messaging() -> LineMessaging:
        """The LINE client; in simulator mode LINE is this very app unless LINE_API_HOST says otherwise."""
        host = settings.line_api_host
        if simulator and host == DEFAULT_LINE_HOST:
            host = request.host_url.rstrip("/") + "/sim/line"
        if host not in clients:
            clients[host] = LineMessaging(host, token)
        return clients[host]

    app.register_blueprint(create_blueprint(service, secret, messaging))
    app.register_blueprint(staff_console(service, settings))
    app.register_blueprint(staff_assets())
    if simulator:
        from bot.simulator import create_blueprint as simulator_blueprint

        app.register_blueprint(simulator_blueprint(service, secret))

    app.after_request(security_headers)

    @app.get("/healthz")
    def healthz() -> tuple[dict[str, Any], int]:
        try:
            redis_state = health(service.client)  # every master answers; a cluster says cluster_state:ok
        except StoreError as exc:
            log.error("healthz_store_unavailable error=%s", exc)
            return {"ok": False, "error": "store unavailable"}, 503
        return {"ok": True, "offices": list(service.offices), "simulator": simulator, **redis_state}, 200

    @app.get("/offices/<office_id>/terms")
    def terms(office_id: str) -> Response:
        try:
            profile = service.offices[office_id]
        except UnknownOfficeError:
            abort(404)
        lang = request.args.get("lang", i18n.SOURCE)  # the frame's language (the full text stays Japanese)
        with i18n.using(lang if lang in i18n.LANGUAGES else i18n.SOURCE):
            page = terms_page(profile, service.offices.terms_text(office_id), service.offices)
        return Response(page, mimetype="text/html")

    return app


def terms_page(profile, text: str, offices=None) -> str:
    """The full terms as a mobile-friendly page (escaped; headings and list items kept).

    The official text is Japanese in every language; in another language (`bot.i18n.using`) the frame
    around it is: the page's title, the office's name and the version, and a note that the text below
    is the official Japanese original."""
    body = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            continue
        if line.startswith("#"):
            body.append(f"<h2>{html.escape(line.lstrip('#').strip())}</h2>")
        elif line.startswith(("- ", "・", "* ")):
            item = re.sub(r"^[-*・]\s*", "", line)
            body.append(f"<p class=item>{html.escape(item)}</p>")
        elif re.match(r"^(第\s*[0-9０-９]+\s*条|（[^）]+）$|\([^)]+\)$)", line):
            body.append(f"<h3>{html.escape(line)}</h3>")
        else:
            body.append(f"<p>{html.escape(line)}</p>")
    terms = profile.terms
    lang = i18n.current()
    if lang == i18n.SOURCE or offices is None:
        head = f"<h1>{html.escape(terms.title)}</h1>"
        shown = profile
    else:
        shown = offices.localized(profile.id, lang)
        head = (f"<h1>{html.escape(T.TERMS_PAGE_TITLE)}</h1>\n<p>{html.escape(T.TERMS_PAGE_NOTE)}</p>\n"
                f"<h2 lang=ja>{html.escape(terms.title)}</h2>")
    return f"""<!doctype html>
<html lang="{'en' if lang == i18n.EN else 'ja'}"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(shown.terms.title)}</title>
<style>{TERMS_STYLE}</style></head><body>
{head}
<p class=meta>{html.escape(shown.name)} ／ {html.escape(shown.terms.version_label)}</p>
<div lang=ja>
{chr(10).join(body)}
</div>
<p class=meta>{html.escape(T.TERMS_PAGE_SOURCE.format(source=terms.source))}</p>
</body></html>"""
