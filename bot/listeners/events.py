from __future__ import annotations

import re

from slack_bolt import App, Say
from slack_sdk import WebClient

from bot import blocks
from bot.intake import suggest_and_post
from bot.listeners.common import actor_from
from bot.services import Services

MENTION = re.compile(r"<@[A-Z0-9]+>")


def register(app: App, services: Services) -> None:
    def on_text(body: dict, event: dict, client: WebClient, say: Say) -> None:
        if event.get("bot_id") or event.get("subtype") or event.get("thread_ts"):
            return  # our own posts, edits, and thread chatter are not new requests
        text = MENTION.sub("", event.get("text") or "").strip()
        if not text or text.lower() == "help":
            say(text=blocks.HELP, thread_ts=event.get("ts"))
            return
        _, note = suggest_and_post(services, client, actor_from(body), text, event["channel"])
        if note:
            say(text=note)

    def on_home(event: dict, client: WebClient, body: dict) -> None:
        views = services.requests.list_vms(actor_from(body))
        client.views_publish(user_id=event["user"], view=blocks.home_view(views))

    app.event("app_mention")(on_text)
    app.message()(on_text)
    app.event("app_home_opened")(on_home)
