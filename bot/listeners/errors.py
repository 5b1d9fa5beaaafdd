"""The one place where failures become words for the user. No traceback ever reaches Slack.

Listeners are wrapped with `guarded`, so an error after `ack()` is answered here rather than
raised into Bolt (whose runner can lose an acknowledgement when a listener fails right after
acking). `register` also installs Bolt's global error handler for failures before a listener.
"""

from __future__ import annotations

import functools
import logging
import uuid
from collections.abc import Callable
from typing import Any, TypeVar

from slack_bolt import App
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.advisor import AdvisorError
from bot.commands import UsageError
from provisioning.errors import DomainError

log = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])


def user_message(error: Exception) -> str:
    if isinstance(error, DomainError | AdvisorError | UsageError):
        return str(error)
    ref = uuid.uuid4().hex[:8]
    log.error("unexpected error (ref %s)", ref, exc_info=error)
    return f"Sorry, something went wrong on my side (ref `{ref}`). Please try again in a minute."


def tell(error: Exception, body: dict[str, Any], respond: Any, client: WebClient | None) -> None:
    """Say what went wrong to the person who acted, privately, wherever they acted."""
    text = user_message(error)
    try:
        if respond is not None and (body.get("response_url") or body.get("response_urls")):
            respond(response_type="ephemeral", replace_original=False, text=text)
            return
        if client is None:
            return
        event = body.get("event") or {}
        user = (body.get("user") or {}).get("id") or event.get("user") or body.get("user_id")
        channel = (body.get("channel") or {}).get("id") or event.get("channel")
        if user and channel:
            client.chat_postEphemeral(channel=channel, user=user, text=text)
        elif user:
            client.chat_postMessage(channel=user, text=text)
    except (SlackApiError, OSError) as exc:
        log.warning("could not tell the user about an error: %s", exc)


def guarded(listener: F) -> F:
    """Wrap a listener (which must take `body` and `client`) so its errors are answered."""

    @functools.wraps(listener)
    def wrapper(**kwargs: Any) -> Any:
        try:
            return listener(**kwargs)
        except Exception as exc:  # noqa: BLE001 - every failure is answered, none is raised
            tell(exc, kwargs.get("body") or {}, kwargs.get("respond"), kwargs.get("client"))
            return None

    return wrapper  # type: ignore[return-value]


def register(app: App) -> None:
    def on_error(error: Exception, body: dict, respond: Any, client: WebClient) -> None:
        tell(error, body, respond, client)

    app.error(on_error)
