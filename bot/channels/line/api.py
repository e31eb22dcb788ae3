"""Calls to the LINE Messaging API (reply, push, loading animation) through line-bot-sdk v3.

Every call goes to `LINE_API_HOST`, so a stand-in (the simulator, a test server) can receive it, and
has explicit timeouts: a webhook must answer LINE within 1-2 seconds.
"""

from __future__ import annotations

import logging
from typing import Any

from linebot.v3.messaging import (
    ApiClient,
    Configuration,
    MessagingApi,
    PushMessageRequest,
    ShowLoadingAnimationRequest,
)

from bot.errors import HwbotError

log = logging.getLogger("hwbot.line")

# (connect, read) seconds.
REPLY_TIMEOUT = (1.0, 2.0)
PUSH_TIMEOUT = (2.0, 10.0)
# A user's profile is asked once, before their first answer is sent: that answer waits for it, so briefly.
PROFILE_TIMEOUT = (0.5, 1.0)


def profile_answer(user: str, language: str | None) -> dict[str, Any]:
    """LINE's answer to `GET /v2/bot/profile/{userId}` as the stand-ins give it (simulator, tests):
    `language` only when the user has one (LINE leaves it out for a user who has not agreed to its
    privacy policy)."""
    answer: dict[str, Any] = {"userId": user, "displayName": "テスト ユーザー"}
    if language:
        answer["language"] = language
    return answer


class LineApiError(HwbotError):
    """Raised when LINE (or its stand-in) refused a call or did not answer in time.

    `status` is LINE's HTTP status (None when there was no answer): the worker treats 409 on a push
    with a retry key as "already delivered".
    """

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status


class PlainJson(dict):
    """A request body that is plain JSON already (dicts, lists, strings, numbers), as `render` builds it."""


class _ApiClient(ApiClient):
    """The SDK's client, minus the walk over a `PlainJson` body looking for models to convert
    (~0.1 ms for a slot picker's Flex message; `hwbot bench` profile)."""

    def sanitize_for_serialization(self, obj: Any) -> Any:
        if isinstance(obj, PlainJson):
            return obj
        return super().sanitize_for_serialization(obj)


class LineMessaging:
    """A thin client: builds the SDK's request models from plain message dicts and sends them."""

    def __init__(self, host: str, access_token: str, *, pool_size: int | None = None):
        """`pool_size`: connections kept to LINE (at least the number of threads calling at once)."""
        self.host = host.rstrip("/")
        configuration = Configuration(host=self.host, access_token=access_token)
        if pool_size:
            configuration.connection_pool_maxsize = max(pool_size, configuration.connection_pool_maxsize or 0)
        self._client = _ApiClient(configuration)
        self._api = MessagingApi(self._client)

    def reply(self, reply_token: str, messages: list[dict[str, Any]]) -> None:
        """Reply once with at most 5 messages; never retried (a reply token is single-use).

        The JSON goes through the SDK's client (auth, host, timeouts, errors) but not through its
        models: building and re-serialising them took ~3 ms a reply (`hwbot bench` profile), and
        `bot.testing.line_spec` already checks what `render` produces against LINE's OpenAPI spec.
        """
        body = PlainJson(replyToken=reply_token, messages=messages)
        self._call(
            "reply",
            lambda: self._client.call_api(
                "/v2/bot/message/reply",
                "POST",
                header_params={"Accept": "application/json", "Content-Type": "application/json"},
                body=body,
                response_types_map={},  # the answer (sent message ids) is not needed
                auth_settings=["Bearer"],
                _request_timeout=REPLY_TIMEOUT,
            ),
        )

    def push(self, to: str, messages: list[dict[str, Any]], retry_key: str | None = None) -> None:
        """Push messages; the same `retry_key` (a UUID) makes a retried push deliver once."""
        request = PushMessageRequest.from_dict({"to": to, "messages": messages})
        self._call(
            "push",
            lambda: self._api.push_message(request, x_line_retry_key=retry_key, _request_timeout=PUSH_TIMEOUT),
        )

    def profile_language(self, user_id: str) -> str | None:
        """The user's LINE language (`GET /v2/bot/profile/{userId}`, a BCP 47 tag such as `en` or `ja`);
        None when LINE gives none (the user has not agreed to LINE's privacy policy)."""
        found: list[Any] = []
        self._call("profile", lambda: found.append(self._api.get_profile(user_id, _request_timeout=PROFILE_TIMEOUT)))
        language = getattr(found[0], "language", None) if found else None
        return language if isinstance(language, str) and language else None

    def show_loading(self, chat_id: str, seconds: int = 5) -> None:
        """Show the loading animation in a one-to-one chat (best effort)."""
        request = ShowLoadingAnimationRequest(chatId=chat_id, loadingSeconds=seconds)
        self._call("loading", lambda: self._api.show_loading_animation(request, _request_timeout=REPLY_TIMEOUT))

    def _call(self, name: str, send) -> None:
        try:
            send()
        except Exception as exc:  # the SDK raises ApiException, urllib3 errors, timeouts…
            status = getattr(exc, "status", None)
            log.warning("line_call_failed call=%s status=%s error=%s", name, status, exc.__class__.__name__)
            raise LineApiError(f"LINE {name} failed: {status or exc.__class__.__name__}", status) from exc
