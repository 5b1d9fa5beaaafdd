from __future__ import annotations

from slack_bolt import Ack, App
from slack_sdk import WebClient

from bot import blocks
from bot.advisor import AdvisorError
from bot.intake import suggest_and_post
from bot.listeners.common import actor_from, request_id_from
from bot.listeners.errors import guarded
from bot.modify import read_modify
from bot.services import Services
from provisioning.catalog import default_catalog


def _value(view: dict, block_id: str, action_id: str) -> str:
    state = view.get("state", {}).get("values", {})
    value = state.get(block_id, {}).get(action_id, {}).get("value")
    return (value or "").strip()


def _submitted_text(view: dict) -> str:
    return _value(view, blocks.REQUEST_TEXT_BLOCK, blocks.REQUEST_TEXT_INPUT)


def register(app: App, services: Services) -> None:
    def on_new_request(ack: Ack, body: dict, view: dict, client: WebClient) -> None:
        text = _submitted_text(view)
        if not text:
            ack(response_action="errors", errors={blocks.REQUEST_TEXT_BLOCK: "Say what you need."})
            return
        if not services.slow_advisor:
            # The rules engine answers in a millisecond, so its objections can go on the field.
            # An LLM could outlast Slack's 3 seconds: then the form closes first and any
            # objection comes as a message.
            try:
                services.advisor.suggest(text)
            except AdvisorError as exc:
                ack(response_action="errors", errors={blocks.REQUEST_TEXT_BLOCK: str(exc)[:150]})
                return
        ack()
        actor = actor_from(body)
        channel = view.get("private_metadata") or actor.user_id
        suggest_and_post(services, client, actor, text, channel)

    def on_modify(ack: Ack, body: dict, view: dict, client: WebClient) -> None:
        request_id = request_id_from(view.get("private_metadata"))
        current = services.requests.get(request_id)
        values = view.get("state", {}).get("values", {})
        spec, errors = read_modify(values, current.spec, default_catalog())
        if spec is None:
            ack(response_action="errors", errors=errors)
            return
        ack()
        services.requests.revise(
            request_id, actor_from(body), current.original_text, spec, change="edited in the form"
        )

    def on_reject(ack: Ack, body: dict, view: dict, client: WebClient) -> None:
        reason = _value(view, blocks.REASON_BLOCK, blocks.REASON_INPUT)
        if not reason:
            ack(response_action="errors", errors={blocks.REASON_BLOCK: "Say why, briefly."})
            return
        ack()
        services.requests.reject(
            request_id_from(view.get("private_metadata")), actor_from(body), reason
        )

    def on_key(ack: Ack, body: dict, view: dict, client: WebClient) -> None:
        from provisioning.sshkeys import InvalidKey, parse_public_key

        try:
            key = parse_public_key(_value(view, blocks.KEY_BLOCK, blocks.KEY_INPUT))
        except InvalidKey as exc:
            ack(response_action="errors", errors={blocks.KEY_BLOCK: str(exc)[:150]})
            return
        ack()
        actor = actor_from(body)
        services.people.set_key(actor, key.normalized_line, key.fingerprint_sha256)
        client.chat_postMessage(
            channel=actor.user_id,
            text=f"🔑 Registered your {key.type} key {key.fingerprint_sha256}. "
            "New VMs will let you in with it.",
        )

    app.view(blocks.NEW_REQUEST_VIEW)(guarded(on_new_request))
    app.view(blocks.MODIFY_VIEW)(guarded(on_modify))
    app.view(blocks.REJECT_VIEW)(guarded(on_reject))
    app.view(blocks.KEY_VIEW)(guarded(on_key))
