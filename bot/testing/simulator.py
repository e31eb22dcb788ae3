"""Test kit for the simulator: a live server in a thread and an HTTP client that plays a test user.

    with LiveServer(create_app(settings, service=service)) as server:
        phone = SimPhone(server.url)
        phone.follow()
        phone.tap("ハローワーク能登")
        phone.say("山田 花子")
        assert "求職番号" in phone.last_text()

Everything goes over real HTTP: /sim/send posts a signed webhook to /callback, the bot calls the
stand-in Messaging API, and the phone reads its inbox from /sim/messages.
"""

from __future__ import annotations

import json
import re
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

from flask import Flask
from werkzeug.serving import make_server

from bot.simulator import USERS

_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
SETTLE_S = 10.0  # how long a phone waits for the worker to send the answer to what it sent


class LiveServer:
    """The app on a threaded development server at 127.0.0.1 on a free port, until the block ends.

    In simulator mode it also runs the outbox worker in a thread, as `hwbot serve` does (the webhook's
    answers are sent by the worker); `worker=False` leaves that to the test.
    """

    def __init__(self, app: Flask, *, worker: bool = True):
        self._server = make_server("127.0.0.1", 0, app, threaded=True)
        self._thread = threading.Thread(target=self._server.serve_forever, name="hwbot-live-server", daemon=True)
        service = app.extensions["hwbot"]
        self._worker: tuple[threading.Thread, threading.Event] | None = None
        self._runner = None
        if worker and service.settings.simulator_mode:
            import redis

            from bot.channels.line.api import LineMessaging
            from bot.service import BotService
            from bot.simulator import SIMULATOR_TOKEN
            from bot.staff.worker import Worker

            # Its own connection, with the worker's longer socket timeout (its stream read blocks ~1 s).
            pool = service.client.connection_pool
            client = redis.Redis(connection_pool=redis.ConnectionPool(
                connection_class=pool.connection_class, **{**pool.connection_kwargs, "socket_timeout": 5.0}))
            own = BotService(service.settings, client=client, offices=service.offices, clock=service.clock)
            self._runner = Worker(own, service.settings, consumer="live-server",
                                  line=LineMessaging(self.url + "/sim/line", SIMULATOR_TOKEN))

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_port}"

    def __enter__(self) -> "LiveServer":
        self._thread.start()
        if self._runner is not None:
            from bot.staff.worker import start_thread

            self._worker = start_thread(self._runner)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._worker is not None:
            thread, stop = self._worker
            stop.set()
            thread.join(timeout=5)
            self._runner.lanes.shutdown()
            self._runner.service.client.close()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def http(method: str, url: str, body: Any = None, headers: dict[str, str] | None = None,
         raw: bytes | None = None, timeout: float = 20) -> tuple[int, Any]:
    """(status, parsed JSON or text) of one request; 4xx/5xx are answers, not exceptions."""
    data = raw if raw is not None else (None if body is None else json.dumps(body, ensure_ascii=False).encode())
    request = urllib.request.Request(url, data=data, method=method, headers=dict(headers or {}))
    if data is not None and "Content-Type" not in request.headers:
        request.add_header("Content-Type", "application/json")
    try:
        with _opener.open(request, timeout=timeout) as response:
            status, payload = response.status, response.read()
    except urllib.error.HTTPError as exc:
        status, payload = exc.code, exc.read()
    text = payload.decode("utf-8", "replace")
    try:
        return status, json.loads(text)
    except ValueError:
        return status, text


def walk(node: Any) -> Iterator[dict[str, Any]]:
    """Every component of a LINE message (Flex boxes, bubbles, carousels; quick reply items)."""
    if isinstance(node, dict):
        yield node
        for key in ("contents", "header", "hero", "body", "footer", "quickReply", "items", "template", "actions"):
            if key in node:
                yield from walk(node[key])
    elif isinstance(node, list):
        for child in node:
            yield from walk(child)


def actions_of(message: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(label, action) of every tappable thing in a message, in display order (quick replies last)."""
    found = []
    for component in walk({k: v for k, v in message.items() if k != "quickReply"}):
        action = component.get("action")
        if isinstance(action, dict):
            found.append((action.get("label") or action.get("text") or "", action))
    for item in (message.get("quickReply") or {}).get("items", []):
        action = item.get("action") or {}
        found.append((action.get("label") or "", action))
    return found


def texts_of(message: dict[str, Any]) -> str:
    """What a message shows as text: a text message's text, or a Flex message's texts and labels."""
    if message.get("type") == "text":
        return message.get("text", "")
    parts = []
    for component in walk(message.get("contents") or message.get("template") or {}):
        if component.get("type") in ("text", "span") and component.get("text"):
            parts.append(component["text"])
        elif isinstance(component.get("action"), dict) and component["action"].get("label"):
            parts.append(component["action"]["label"])
        elif component.get("text") and component.get("type") in ("buttons", "confirm"):
            parts.append(component["text"])
    return "\n".join(parts) or message.get("altText", "")


class SimPhone:
    """One test user's phone, over HTTP: send events, read the chat, tap buttons by label."""

    def __init__(self, base_url: str, user: str = USERS[0]["id"]):
        self.base = base_url.rstrip("/")
        self.user = user
        self.seen = 0  # sequence number up to which the current turn's items were read

    def send(self, kind: str, text: str = "", display: str | None = None) -> dict[str, Any]:
        self.seen = self.last_seq()
        status, answer = http("POST", self.base + "/sim/send",
                              {"user": self.user, "kind": kind, "text": text, "display": display})
        if status != 200 or not answer.get("ok"):
            raise AssertionError(f"/sim/send {kind} failed: {status} {answer}")
        self.settle()
        return answer

    def settle(self, timeout: float = SETTLE_S) -> bool:
        """Wait (bounded) until the worker has sent everything queued, the answer to what was sent included."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status, answer = http("GET", f"{self.base}/sim/messages?user={self.user}&after=0")
            if status == 200 and answer.get("settled"):
                return True
            time.sleep(0.01)  # the worker thread is sending: a real wait, bounded above
        return False

    def follow(self) -> dict[str, Any]:
        return self.send("follow")

    def unfollow(self) -> dict[str, Any]:
        return self.send("unfollow")

    def sticker(self) -> dict[str, Any]:
        return self.send("sticker")

    def say(self, text: str) -> dict[str, Any]:
        return self.send("text", text)

    def chat(self, after: int = 0) -> list[dict[str, Any]]:
        status, answer = http("GET", f"{self.base}/sim/messages?user={self.user}&after={after}")
        assert status == 200, answer
        return answer["items"]

    def last_seq(self) -> int:
        status, answer = http("GET", f"{self.base}/sim/messages?user={self.user}&after=0")
        assert status == 200, answer
        return answer["last"]

    def latest(self) -> list[dict[str, Any]]:
        """The bot's messages since the last thing this phone sent."""
        return [item["message"] for item in self.chat(self.seen) if item.get("from") == "bot"]

    def last_text(self) -> str:
        return "\n".join(texts_of(message) for message in self.latest())

    def buttons(self) -> list[str]:
        return [label for message in self.latest() for label, _ in actions_of(message)]

    def find(self, label: str | re.Pattern[str], *, within: str | None = None) -> dict[str, Any]:
        """The action labelled `label` in the latest answer (the newest message first).

        `within`: only in a Flex bubble that also shows this text (e.g. the day of a slot button).
        """
        for message in reversed(self.latest()):
            bubbles = [message]
            contents = message.get("contents") or {}
            if contents.get("type") == "carousel":
                bubbles = [{"type": "flex", "contents": bubble} for bubble in contents.get("contents", [])]
                if message.get("quickReply"):
                    bubbles.append({"type": "text", "quickReply": message["quickReply"]})
            for bubble in bubbles:
                if within is not None and within not in texts_of(bubble):
                    continue
                for shown, action in actions_of(bubble):
                    if (shown == label) if isinstance(label, str) else label.search(shown):
                        return action
        raise AssertionError(f"no button {label!r}; the latest buttons: {', '.join(self.buttons()) or 'none'}")

    def tap(self, label: str | re.Pattern[str], *, within: str | None = None) -> dict[str, Any]:
        """Tap a postback (or message) button of the latest answer, as the LINE app would."""
        action = self.find(label, within=within)
        if action.get("type") == "message":
            return self.send("text", action.get("text", ""))
        assert action.get("type") == "postback", f"{label!r} is a {action.get('type')} button"
        return self.send("postback", action.get("data", ""), action.get("displayText"))

    def staff(self, after: str = "") -> dict[str, Any]:
        status, answer = http("GET", f"{self.base}/sim/staff" + (f"?after={after}" if after else ""))
        assert status == 200, answer
        return answer
