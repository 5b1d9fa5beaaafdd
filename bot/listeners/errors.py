"""The one place where failures become words for the user. No traceback ever reaches Slack."""

from __future__ import annotations

import logging
import uuid
from typing import Any

from slack_bolt import App
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.advisor import AdvisorError
from provisioning.errors import DomainError

log = logging.getLogger(__name__)


def user_message(error: Exception) -> str:
    if isinstance(error, DomainError | AdvisorError):
        return str(error)
    ref = uuid.uuid4().hex[:8]
    log.error("unexpected error (ref %s)", ref, exc_info=error)
    return f"Sorry, something went wrong on my side (ref `{ref}`). Please try again in a minute."


def register(app: App) -> None:
    def on_error(error: Exception, body: dict, respond: Any, client: WebClient) -> None:
        text = user_message(error)
        try:
            if respond is not None and (body.get("response_url") or body.get("response_urls")):
                respond(response_type="ephemeral", replace_original=False, text=text)
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

    app.error(on_error)
