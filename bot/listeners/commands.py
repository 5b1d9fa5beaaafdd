"""`/vm`: parse the text, then one small handler per command."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from slack_bolt import Ack, App, Respond
from slack_sdk import WebClient

from bot import blocks
from bot import commands as cmd
from bot.intake import suggest_and_post
from bot.listeners.common import actor_from
from bot.listeners.errors import guarded
from bot.services import Services
from provisioning.people import Actor


@dataclass(frozen=True)
class Ctx:
    services: Services
    actor: Actor
    body: dict[str, Any]
    respond: Respond
    client: WebClient

    def tell(self, text: str, block_list: list[dict] | None = None) -> None:
        self.respond(response_type="ephemeral", text=text, blocks=block_list)


def open_form(c: cmd.OpenForm, ctx: Ctx) -> None:
    ctx.client.views_open(
        trigger_id=ctx.body["trigger_id"],
        view=blocks.request_modal(
            callback_id=blocks.NEW_REQUEST_VIEW,
            title="Ask for a VM",
            metadata=ctx.body.get("channel_id", ""),
        ),
    )


def show_help(c: cmd.Help, ctx: Ctx) -> None:
    ctx.tell(blocks.HELP)


def list_vms(c: cmd.ListVms, ctx: Ctx) -> None:
    views = ctx.services.vms.list_vms(ctx.actor, everyone=c.everyone)
    title = "Everyone's VMs" if c.everyone else "Your VMs"
    now = ctx.services.vms.now()
    ctx.tell(f"{title}: {len(views)}", blocks.vm_list(views, now))


def vm_action(c: cmd.VmAction, ctx: Ctx) -> None:
    vms, now = ctx.services.vms, ctx.services.vms.now()
    if c.verb == "status":
        view = vms.status(ctx.actor, c.name)
        ctx.tell(blocks.card_text(view), blocks.vm_status(view, now))
    elif c.verb == "destroy":
        vms.check_can_destroy(ctx.actor, c.name)
        view = vms.status(ctx.actor, c.name)
        ctx.tell(f"Destroy {c.name}?", blocks.confirm_destroy(view))
    elif c.verb == "stop":
        vms.stop(ctx.actor, c.name)
        ctx.tell(f"⏸️ Stopping `{c.name}`; I'll say so in its thread when it has stopped.")
    elif c.verb == "start":
        vms.start(ctx.actor, c.name)
        ctx.tell(f"▶️ Starting `{c.name}`; its thread will show the new address.")
    else:  # audit
        entries = vms.history(ctx.actor, c.name)
        rows = [(e.at, e.actor, e.action, blocks.audit_detail(e.details)) for e in entries]
        ctx.tell(f"History of {c.name}", blocks.history(c.name, rows))


def extend(c: cmd.Extend, ctx: Ctx) -> None:
    view = ctx.services.vms.extend(ctx.actor, c.name, c.hours)
    assert view.vm is not None and view.vm.expires_at is not None
    ctx.tell(f"⏳ `{c.name}` now expires {blocks.when(view.vm.expires_at)}.")


def set_role(c: cmd.SetRole, ctx: Ctx) -> None:
    person = ctx.services.people.set_role(ctx.actor, c.user_id, c.role)
    ctx.tell(f"<@{person.user_id}> is now {person.role.value}.")


def list_roles(c: cmd.ListRoles, ctx: Ctx) -> None:
    people = ctx.services.people.list_roles(ctx.actor)
    rows = [(p.user_id, p.role.value, p.display_name) for p in people]
    ctx.tell(f"{len(rows)} people", blocks.roles_list(rows))


def register_key(c: cmd.RegisterKey, ctx: Ctx) -> None:
    ctx.client.views_open(trigger_id=ctx.body["trigger_id"], view=blocks.key_modal())


def export_audit(c: cmd.AuditExport, ctx: Ctx) -> None:
    data = ctx.services.vms.export_audit(ctx.actor)
    dm = ctx.client.conversations_open(users=ctx.actor.user_id)["channel"]["id"]
    ctx.client.files_upload_v2(
        channel=dm,
        content=data,
        filename="vmbot-audit.csv",
        title="vmbot audit log",
        initial_comment="Here is the audit log as CSV.",
    )
    ctx.tell("I sent you the audit log as a CSV file in a direct message.")


def ask(c: cmd.Ask, ctx: Ctx) -> None:
    _, note = suggest_and_post(
        ctx.services,
        ctx.client,
        ctx.actor,
        c.text,
        ctx.body["channel_id"],
        on_thinking=lambda: ctx.tell("🤔 Thinking about your request…"),
    )
    if note:
        ctx.tell(note)


HANDLERS: dict[type, Callable[[Any, Ctx], None]] = {
    cmd.OpenForm: open_form,
    cmd.Help: show_help,
    cmd.ListVms: list_vms,
    cmd.VmAction: vm_action,
    cmd.Extend: extend,
    cmd.SetRole: set_role,
    cmd.ListRoles: list_roles,
    cmd.RegisterKey: register_key,
    cmd.AuditExport: export_audit,
    cmd.Ask: ask,
}


def register(app: App, services: Services) -> None:
    def on_vm(ack: Ack, body: dict, respond: Respond, client: WebClient) -> None:
        ack()
        ctx = Ctx(services, actor_from(body), body, respond, client)
        services.people.person(ctx.actor)  # first sight creates the row; profile kept fresh
        try:
            command = cmd.parse(body.get("text") or "")
        except cmd.UsageError as exc:
            ctx.tell(str(exc))
            return
        HANDLERS[type(command)](command, ctx)

    app.command("/vm")(guarded(on_vm))
