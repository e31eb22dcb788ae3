"""The baseline the app is measured against (`gunicorn 'bot.bench.baseline:baseline_app()'`)."""

from __future__ import annotations

import hmac
import json
from typing import Any

from bot.settings import load_settings


def baseline_app():
    """The minimal webhook the app is compared with: signature, one GET, one SET, one reply."""
    from flask import Flask, Response, request

    from bot.channels.line.api import LineMessaging
    from bot.channels.line.webhook import sign
    from bot.store import connect

    settings = load_settings()
    secret = settings.line_channel_secret or ""
    client = connect(settings)
    line = LineMessaging(settings.line_api_host, settings.line_channel_access_token or "")
    app = Flask(__name__)

    @app.get("/healthz")
    def healthz() -> dict[str, Any]:
        client.ping()
        return {"ok": True}

    @app.post("/callback")
    def callback() -> Response:
        body = request.get_data()
        expected = sign(body, secret)
        if not hmac.compare_digest(expected, request.headers.get("X-Line-Signature", "")):
            return Response("invalid signature", status=400)
        for event in json.loads(body).get("events", []):
            key = f"bench:base:{event['source']['userId']}"
            turns = int(client.get(key) or 0)
            client.set(key, turns + 1)
            line.reply(event["replyToken"], [{"type": "text", "text": f"{turns + 1}"}])
        return Response("OK", status=200)

    return app
