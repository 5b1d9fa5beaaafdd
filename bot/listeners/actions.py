from __future__ import annotations

from slack_bolt import Ack, App, Respond
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot import blocks
from bot.listeners.common import BadPayload, actor_from, request_id_from
from bot.listeners.errors import guarded
from bot.modify import modify_modal
from bot.services import Services


def _vm_and_hours(value: object) -> tuple[str, float]:
    name, _, hours = str(value).partition(":")
    try:
        amount = float(hours or 1)
    except ValueError:
        raise BadPayload("That button does not carry a duration I understand.") from None
    if not name or not 0 < amount <= 24 * 7:
        raise BadPayload("That button does not carry a duration I understand.")
    return name, amount


def register(app: App, services: Services) -> None:
    requests, vms = services.requests, services.vms

    def say_privately(respond: Respond, text: str) -> None:
        respond(response_type="ephemeral", replace_original=False, text=text)

    def on_approve(ack: Ack, body: dict, action: dict, client: WebClient, respond: Respond) -> None:
        ack()
        requests.approve(request_id_from(action.get("value")), actor_from(body))

    def on_request_approval(
        ack: Ack, body: dict, action: dict, respond: Respond, client: WebClient
    ) -> None:
        ack()
        view = requests.request_approval(request_id_from(action.get("value")), actor_from(body))
        try:
            posted = services.notifier.post_admin_card(view)
        except SlackApiError as exc:
            say_privately(
                respond,
                f"I couldn't post to the admin channel ({exc.response.get('error')}). "
                "Ask an admin to invite me there, then press Request approval again.",
            )
            return
        if posted:
            requests.attach_admin_card(view.id, *posted)
        else:
            say_privately(
                respond,
                "No admin channel is set up (VMBOT_ADMIN_CHANNEL), so ask an approver "
                "to open this thread and press Approve.",
            )

    def on_use_nearest(
        ack: Ack, body: dict, action: dict, client: WebClient, respond: Respond
    ) -> None:
        ack()
        requests.use_nearest(request_id_from(action.get("value")), actor_from(body))

    def on_cancel(ack: Ack, body: dict, action: dict, client: WebClient, respond: Respond) -> None:
        ack()
        requests.cancel(request_id_from(action.get("value")), actor_from(body))

    def on_admin_approve(
        ack: Ack, body: dict, action: dict, client: WebClient, respond: Respond
    ) -> None:
        ack()
        requests.approve(request_id_from(action.get("value")), actor_from(body))

    def on_admin_reject(
        ack: Ack, body: dict, action: dict, client: WebClient, respond: Respond
    ) -> None:
        ack()
        request_id = request_id_from(action.get("value"))
        requests.check_can_reject(request_id, actor_from(body))
        client.views_open(trigger_id=body["trigger_id"], view=blocks.reject_modal(request_id))

    def on_modify(ack: Ack, body: dict, action: dict, client: WebClient, respond: Respond) -> None:
        ack()
        request_id = request_id_from(action.get("value"))
        requests.check_can_revise(request_id, actor_from(body))
        client.views_open(
            trigger_id=body["trigger_id"], view=modify_modal(requests.get(request_id))
        )

    def on_extend(ack: Ack, body: dict, action: dict, respond: Respond, client: WebClient) -> None:
        ack()
        name, hours = _vm_and_hours(action.get("value"))
        view = vms.extend(actor_from(body), name, hours)
        assert view.vm is not None and view.vm.expires_at is not None
        say_privately(respond, f"⏳ `{name}` now expires {blocks.when(view.vm.expires_at)}.")

    def on_stop(ack: Ack, body: dict, action: dict, respond: Respond, client: WebClient) -> None:
        ack()
        vms.stop(actor_from(body), str(action.get("value")))
        say_privately(respond, f"⏸️ Stopping `{action.get('value')}`…")

    def on_start(ack: Ack, body: dict, action: dict, respond: Respond, client: WebClient) -> None:
        ack()
        vms.start(actor_from(body), str(action.get("value")))
        say_privately(respond, f"▶️ Starting `{action.get('value')}`…")

    def on_destroy(ack: Ack, body: dict, action: dict, respond: Respond, client: WebClient) -> None:
        ack()
        name, actor = str(action.get("value")), actor_from(body)
        vms.check_can_destroy(actor, name)
        view = vms.status(actor, name)
        respond(
            response_type="ephemeral",
            replace_original=False,
            text=f"Destroy {name}?",
            blocks=blocks.confirm_destroy(view),
        )

    def on_destroy_confirm(
        ack: Ack, body: dict, action: dict, respond: Respond, client: WebClient
    ) -> None:
        ack()
        name = str(action.get("value"))
        vms.destroy(actor_from(body), name)
        respond(replace_original=True, text=f"🗑️ Destroying `{name}`; its thread will confirm.")

    def on_dismiss(ack: Ack, respond: Respond, body: dict, client: WebClient) -> None:
        ack()
        respond(delete_original=True)

    app.action(blocks.APPROVE)(guarded(on_approve))
    app.action(blocks.REQUEST_APPROVAL)(guarded(on_request_approval))
    app.action(blocks.CANCEL)(guarded(on_cancel))
    app.action(blocks.USE_NEAREST)(guarded(on_use_nearest))
    app.action(blocks.ADMIN_APPROVE)(guarded(on_admin_approve))
    app.action(blocks.ADMIN_REJECT)(guarded(on_admin_reject))
    app.action(blocks.MODIFY)(guarded(on_modify))
    app.action(blocks.VM_EXTEND)(guarded(on_extend))
    app.action(blocks.VM_STOP)(guarded(on_stop))
    app.action(blocks.VM_START)(guarded(on_start))
    app.action(blocks.VM_DESTROY)(guarded(on_destroy))
    app.action(blocks.VM_DESTROY_CONFIRM)(guarded(on_destroy_confirm))
    app.action(blocks.DISMISS)(guarded(on_dismiss))
