from __future__ import annotations

from slack_bolt import Ack, App, Respond
from slack_sdk import WebClient

from bot import blocks
from bot.listeners.common import actor_from, request_id_from
from bot.services import Services


def register(app: App, services: Services) -> None:
    requests = services.requests

    def on_approve(ack: Ack, body: dict, action: dict) -> None:
        ack()
        requests.approve(request_id_from(action.get("value")), actor_from(body))

    def on_request_approval(ack: Ack, body: dict, action: dict, respond: Respond) -> None:
        ack()
        view = requests.request_approval(request_id_from(action.get("value")), actor_from(body))
        posted = services.notifier.post_admin_card(view)
        if posted:
            requests.attach_admin_card(view.id, *posted)
        else:
            respond(
                response_type="ephemeral",
                replace_original=False,
                text="No admin channel is set up (VMBOT_ADMIN_CHANNEL), so ask an approver "
                "to open this thread and press Approve.",
            )

    def on_cancel(ack: Ack, body: dict, action: dict) -> None:
        ack()
        requests.cancel(request_id_from(action.get("value")), actor_from(body))

    def on_admin_decision(ack: Ack, body: dict, action: dict) -> None:
        ack()
        request_id, actor = request_id_from(action.get("value")), actor_from(body)
        if action["action_id"] == blocks.ADMIN_APPROVE:
            requests.approve(request_id, actor)
        else:
            requests.reject(request_id, actor)

    def on_modify(ack: Ack, body: dict, action: dict, client: WebClient) -> None:
        ack()
        view = requests.get(request_id_from(action.get("value")))
        client.views_open(
            trigger_id=body["trigger_id"],
            view=blocks.request_modal(
                callback_id=blocks.MODIFY_VIEW,
                title="Modify the request",
                initial=view.original_text,
                metadata=str(view.id),
            ),
        )

    app.action(blocks.APPROVE)(on_approve)
    app.action(blocks.REQUEST_APPROVAL)(on_request_approval)
    app.action(blocks.CANCEL)(on_cancel)
    app.action(blocks.ADMIN_APPROVE)(on_admin_decision)
    app.action(blocks.ADMIN_REJECT)(on_admin_decision)
    app.action(blocks.MODIFY)(on_modify)
