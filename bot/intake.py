"""From words to a card: the one path that slash commands, modals, DMs and mentions share."""

from __future__ import annotations

import logging
from collections.abc import Callable

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot import blocks
from bot.services import Services
from provisioning.people import Actor
from provisioning.views import RequestView

log = logging.getLogger(__name__)

# Where the bot cannot post (a private channel it is not in), the card goes to the user's DM.
UNREACHABLE = {"not_in_channel", "channel_not_found", "is_archived", "restricted_action"}


def suggest_and_post(
    services: Services,
    client: WebClient,
    actor: Actor,
    text: str,
    channel: str,
    *,
    on_thinking: Callable[[], None] | None = None,
) -> tuple[RequestView, str | None]:
    """Suggest a VM for `text`, post its card as a thread root, and remember where it is.

    Returns the view and, when the card had to go elsewhere, a note saying where.
    Raises AdvisorError or DomainError with a sentence for the user.
    """
    if on_thinking is not None and services.slow_advisor:
        on_thinking()  # an LLM may take seconds: say so rather than stay silent
    spec = services.advisor.suggest(text)
    view = services.requests.create_request(actor, text, spec, channel=channel)
    note = None
    try:
        posted = client.chat_postMessage(
            channel=channel, text=blocks.card_text(view), blocks=blocks.suggestion_card(view)
        )
    except SlackApiError as exc:
        if exc.response.get("error") not in UNREACHABLE:
            raise
        dm = client.conversations_open(users=actor.user_id)["channel"]["id"]
        posted = client.chat_postMessage(
            channel=dm, text=blocks.card_text(view), blocks=blocks.suggestion_card(view)
        )
        note = "I can't post in that channel, so I sent the suggestion to you directly."
    view = services.requests.attach_card(view.id, posted["channel"], posted["ts"])
    return view, note
