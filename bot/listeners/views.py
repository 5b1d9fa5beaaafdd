from __future__ import annotations

from slack_bolt import Ack, App
from slack_sdk import WebClient

from bot import blocks
from bot.advisor import AdvisorError
from bot.intake import suggest_and_post
from bot.listeners.common import actor_from, request_id_from
from bot.services import Services


def _submitted_text(view: dict) -> str:
    state = view.get("state", {}).get("values", {})
    value = state.get(blocks.REQUEST_TEXT_BLOCK, {}).get(blocks.REQUEST_TEXT_INPUT, {}).get("value")
    return (value or "").strip()


def register(app: App, services: Services) -> None:
    def on_new_request(ack: Ack, body: dict, view: dict, client: WebClient) -> None:
        text = _submitted_text(view)
        try:
            services.advisor.suggest(text)  # validate before closing the form
        except AdvisorError as exc:
            ack(response_action="errors", errors={blocks.REQUEST_TEXT_BLOCK: str(exc)[:150]})
            return
        ack()
        actor = actor_from(body)
        channel = view.get("private_metadata") or actor.user_id
        suggest_and_post(services, client, actor, text, channel)

    def on_modify(ack: Ack, body: dict, view: dict) -> None:
        text = _submitted_text(view)
        try:
            spec = services.advisor.suggest(text)
        except AdvisorError as exc:
            ack(response_action="errors", errors={blocks.REQUEST_TEXT_BLOCK: str(exc)[:150]})
            return
        ack()
        request_id = request_id_from(view.get("private_metadata"))
        services.requests.revise(request_id, actor_from(body), text, spec)

    app.view(blocks.NEW_REQUEST_VIEW)(on_new_request)
    app.view(blocks.MODIFY_VIEW)(on_modify)
