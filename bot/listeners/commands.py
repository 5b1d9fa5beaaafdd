from __future__ import annotations

from slack_bolt import Ack, App, Respond
from slack_sdk import WebClient

from bot import blocks
from bot.intake import suggest_and_post
from bot.listeners.common import actor_from
from bot.services import Services


def register(app: App, services: Services) -> None:
    def on_vm(ack: Ack, body: dict, respond: Respond, client: WebClient) -> None:
        ack()
        text = (body.get("text") or "").strip()
        word = text.split(maxsplit=1)[0].lower() if text else ""
        actor = actor_from(body)
        if not text:
            client.views_open(
                trigger_id=body["trigger_id"],
                view=blocks.request_modal(
                    callback_id=blocks.NEW_REQUEST_VIEW,
                    title="Ask for a VM",
                    metadata=body.get("channel_id", ""),
                ),
            )
        elif word == "help":
            respond(response_type="ephemeral", text=blocks.HELP)
        elif word == "list" and len(text.split()) == 1:
            views = services.requests.list_vms(actor)
            respond(response_type="ephemeral", text="Your VMs", blocks=blocks.vm_list(views))
        else:
            _, note = suggest_and_post(services, client, actor, text, body["channel_id"])
            if note:
                respond(response_type="ephemeral", text=note)

    app.command("/vm")(on_vm)
