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
    def on_text(body: dict, event: dict, client: WebClient, say: Say) -> None:
        if event.get("bot_id") or event.get("subtype"):
            return  # our own posts and message edits are not requests
        text = MENTION.sub("", event.get("text") or "").strip()
        thread = event.get("thread_ts")
        if thread and thread != event.get("ts"):
            refine(body, event, text, say)
            return
        if not text or text.lower() == "help":
            say(text=blocks.HELP, thread_ts=event.get("ts"))
            return
        _, note = suggest_and_post(services, client, actor_from(body), text, event["channel"])
        if note:
            say(text=note)

    def refine(body: dict, event: dict, text: str, say: Say) -> None:
        """A reply in a card's thread changes a suggested request; nothing else is touched."""
        view = services.requests.find_by_thread(event["channel"], event["thread_ts"])
        if view is None or not text:
            return  # a thread that is not ours, or an empty reply
        if view.status is not RequestStatus.SUGGESTED:
            say(
                text=f"This request is {view.status.value}, so I won't change it. "
                "Ask with `/vm …` for a new one.",
                thread_ts=event["thread_ts"],
            )
            return
        try:
            spec = services.advisor.suggest(f"{view.original_text}\n{text}")
        except AdvisorError as exc:
            say(text=f"I couldn't apply that: {exc}", thread_ts=event["thread_ts"])
            return
        services.requests.revise(
            view.id,
            actor_from(body),
            f"{view.original_text}\n{text}",
            spec,
            change=text,
        )

    def on_home(event: dict, client: WebClient, body: dict) -> None:
        publish_home(client, services.requests, services.vms, actor_from(body))

    app.event("app_mention")(guarded(on_text))
    app.message()(guarded(on_text))
    app.event("app_home_opened")(guarded(on_home))
