"""A user's chat with the bot in this process: events go through `BotService`, the exchanges are kept.

The terminal channel (`hwbot chat`) talks through it; the test kit's `ChatDriver` builds on it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from bot.dialog import Inbound, Outcome, Reply
from bot.service import BotService


@dataclass
class Exchange:
    """One user action and what the bot answered."""

    action: str
    outcome: Outcome

    @property
    def replies(self) -> list[Reply]:
        return self.outcome.replies

    @property
    def lang(self) -> str:
        """The language the answer was said in (render its replies in it: `bot.i18n.using`)."""
        return self.outcome.conversation.lang


@dataclass
class ChatSession:
    """One user's side of a chat: each action is a turn of `BotService`, kept with its answer.

    `line_language` plays the `language` of the user's LINE profile (a BCP 47 tag; None: LINE gives
    none): after a first greeting the session asks it, as the worker asks LINE, and shows the greeting
    again in that language instead (`BotService.profile_turn`).
    """

    service: BotService
    user: str
    exchanges: list[Exchange] = field(default_factory=list)
    line_language: str | None = None

    def send(self, kind: str, text: str = "", action: str | None = None) -> Exchange:
        outcome = self.service.handle(Inbound(user=self.user, kind=kind, text=text))  # type: ignore[arg-type]
        if outcome is not None and outcome.ask_profile:
            outcome = self.service.profile_turn(self.user, self.line_language) or outcome
        exchange = Exchange(action or f"{kind}: {text}", outcome)
        self.exchanges.append(exchange)
        return exchange

    def say(self, text: str) -> Exchange:
        return self.send("text", text, action=f"> {text}")

    def follow(self) -> Exchange:
        return self.send("follow", action="(友だち追加)")
