from __future__ import annotations

import re

from slack_bolt import App, Say
from slack_sdk import WebClient

from bot import blocks
from bot.advisor import AdvisorError
from bot.home import publish_home
from bot.intake import suggest_and_post
from bot.listeners.common import actor_from
from bot.listeners.errors import guarded
from bot.services import Services
from db.models import RequestStatus

MENTION = re.compile(r"<@[A-Z0-9]+>")


def register(app: App, services: Services) -> None:
    def on_message(body: dict, event: dict, client: WebClient, say: Say) -> None:
        """DMs are requests; in channels only replies in a card's thread are for the bot
        (top-level channel talk is people's own, and @-mentions come as app_mention)."""
        if event.get("bot_id") or event.get("subtype"):
            return  # our own posts and message edits are not requests
        thread = event.get("thread_ts")
        if thread and thread != event.get("ts"):
            refine(body, event, client)
        elif event.get("channel_type") == "im":
            ask(body, event, client, say)

    def on_mention(body: dict, event: dict, client: WebClient, say: Say) -> None:
        thread = event.get("thread_ts")
        if thread and thread != event.get("ts"):
            return  # a mention in a thread also arrives as a message event, handled there
        ask(body, event, client, say)

    def ask(body: dict, event: dict, client: WebClient, say: Say) -> None:
        text = MENTION.sub("", event.get("text") or "").strip()
        if not text or text.lower() == "help":
            say(text=blocks.HELP, thread_ts=event.get("ts"))
            return
        _, note = suggest_and_post(services, client, actor_from(body), text, event["channel"])
        if note:
            say(text=note)

    def refine(body: dict, event: dict, client: WebClient) -> None:
        """The requester's reply in a card's thread changes a suggested request; others'
        replies are conversation, and a decided request is never changed."""
        text = MENTION.sub("", event.get("text") or "").strip()
        view = services.requests.find_by_thread(event["channel"], event["thread_ts"])
        actor = actor_from(body)
        if view is None or not text or actor.user_id != view.requester:
            return
        if view.status is not RequestStatus.SUGGESTED:
            client.chat_postEphemeral(
                channel=event["channel"],
                user=actor.user_id,
                thread_ts=event["thread_ts"],
                text=f"This request is {view.status.value}, so I won't change it. "
                "Ask with `/vm …` for a new one.",
            )
            return
        try:
            spec = services.advisor.suggest(f"{view.original_text}\n{text}")
        except AdvisorError as exc:
            client.chat_postEphemeral(
                channel=event["channel"],
                user=actor.user_id,
                thread_ts=event["thread_ts"],
                text=f"I couldn't apply that: {exc}",
            )
            return
        services.requests.revise(view.id, actor, f"{view.original_text}\n{text}", spec, change=text)

    def on_home(event: dict, client: WebClient, body: dict) -> None:
        publish_home(client, services.requests, services.vms, actor_from(body))

    app.event("app_mention")(guarded(on_mention))
    app.message()(guarded(on_message))
    app.event("app_home_opened")(guarded(on_home))
