"""Block Kit, built only here, by pure functions of plain views.

Action ids are constants shared with the listeners and the tests. Every builder's output is
validated against slack_sdk's block models in the tests, and stays within Slack's limits.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from db.models import RequestStatus, VmStatus
from provisioning.catalog import CatalogError, default_catalog
from provisioning.views import RequestView

Block = dict[str, Any]

APPROVE = "vm_approve"
REQUEST_APPROVAL = "vm_request_approval"
MODIFY = "vm_modify"
CANCEL = "vm_cancel"
ADMIN_APPROVE = "vm_admin_approve"
ADMIN_REJECT = "vm_admin_reject"
USE_NEAREST = "vm_use_nearest"
VM_EXTEND = "vm_extend"
VM_STOP = "vm_stop"
VM_START = "vm_start"
VM_DESTROY = "vm_destroy"
VM_DESTROY_CONFIRM = "vm_destroy_confirm"
DISMISS = "vm_dismiss"
KEY_VIEW = "vm_key_view"
KEY_BLOCK = "public_key"
KEY_INPUT = "key"
MODIFY_VIEW = "vm_modify_view"
NEW_REQUEST_VIEW = "vm_new_request_view"
REQUEST_TEXT_BLOCK = "request_text"
REQUEST_TEXT_INPUT = "text"

MAX_SECTION_TEXT = 3000
MAX_FIELD_TEXT = 2000
MAX_PLAIN_INPUT = 3000

STATUS_LABEL = {
    RequestStatus.SUGGESTED: "suggested",
    RequestStatus.PENDING_APPROVAL: "waiting for an approver",
    RequestStatus.APPROVED: "approved",
    RequestStatus.REJECTED: "rejected",
    RequestStatus.CANCELLED: "cancelled",
    RequestStatus.EXPIRED: "expired",
}

VM_LINE = {
    VmStatus.QUEUED: "⏳ Queued",
    VmStatus.PROVISIONING: "🔧 Provisioning",
    VmStatus.RUNNING: "✅ Running",
    VmStatus.STOPPING: "⏸️ Stopping",
    VmStatus.STOPPED: "⏸️ Stopped",
    VmStatus.DESTROYING: "🗑️ Destroying",
    VmStatus.DESTROYED: "🗑️ Destroyed",
    VmStatus.FAILED: "❌ Failed",
}


def escape(text: str) -> str:
    """Neutralise mrkdwn control characters, so user text cannot @-mention or link."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _mrkdwn(text: str, limit: int = MAX_SECTION_TEXT) -> dict[str, str]:
    return {"type": "mrkdwn", "text": clip(text, limit)}


def _button(text: str, action_id: str, value: str, style: str | None = None) -> Block:
    button: Block = {
        "type": "button",
        "text": {"type": "plain_text", "text": text, "emoji": True},
        "action_id": action_id,
        "value": value,
    }
    if style:
        button["style"] = style
    return button


def when(moment: datetime) -> str:
    # Slack renders <!date> in each reader's own time zone; the fallback is UTC.
    epoch = int(moment.timestamp())
    return f"<!date^{epoch}^{{time}}|{moment:%H:%M} UTC>"


def hours(value: float) -> str:
    if value < 1:
        return f"{round(value * 60)} min"
    if value >= 24 and value % 24 == 0:
        days = value / 24
        return f"{days:g} day" + ("s" if days != 1 else "")
    return f"{value:g} h"


def money(value: float) -> str:
    return f"${value:.3f}" if value < 1 else f"${value:,.2f}"


def spec_fields(view: RequestView) -> list[dict[str, str]]:
    spec = view.spec
    catalog = default_catalog()
    gpu = f" · {spec.gpu.count}× {spec.gpu.type}" if spec.gpu else ""
    try:
        location = f" ({catalog.region_location(spec.region)})"
    except CatalogError:
        location = ""
    try:
        os_label = catalog.image(spec.os_image).label
    except CatalogError:
        os_label = spec.os_image
    installs = " · ".join(spec.packages) if spec.packages else "nothing extra"
    if view.vm and view.vm.expires_at:
        expires = when(view.vm.expires_at)
    elif spec.ttl_hours:
        expires = f"{hours(spec.ttl_hours)} after it starts"
    else:
        expires = "never (needs approval)"
    cost = f"{money(spec.cost.usd_per_hour)}/h"
    if spec.cost.usd_total is not None and spec.ttl_hours:
        cost += f" · ≈ {money(spec.cost.usd_total)} for {hours(spec.ttl_hours)}"
    policy = {
        "allow": "✅ auto-approve",
        "needs_approval": "🔐 needs approval",
        "deny": "⛔ denied",
    }.get(view.policy_decision, view.policy_decision)
    if view.policy_reason:
        policy += f" ({view.policy_reason})"
    if view.policy_headroom and view.is_open:
        policy += f"\n_{view.policy_headroom}_"
    pairs = [
        ("Machine", f"{spec.machine_type} · {spec.vcpus} vCPU · {spec.memory_gb:g} GB{gpu}"),
        ("Disk", f"{spec.disk_gb} GB {spec.disk_type}"),
        ("OS", os_label),
        ("Region", f"{spec.zone or spec.region}{location}" + (" · spot" if spec.spot else "")),
        ("Installs", installs),
        ("Expires", expires),
        ("Cost", cost),
        ("Policy", policy),
    ]
    return [_mrkdwn(f"*{label}*\n{value}", MAX_FIELD_TEXT) for label, value in pairs]


def connect_hint(view: RequestView) -> str:
    vm = view.vm
    if vm is None or not vm.ip:
        return ""
    if view.spec.os_family == "windows":
        return f"RDP to {vm.ip} (set a password with `gcloud compute reset-windows-password`)"
    zone = f" --zone {vm.zone}" if vm.zone else ""
    return f"`gcloud compute ssh {vm.name}{zone} --tunnel-through-iap`"


def vm_line(view: RequestView) -> str:
    vm = view.vm
    if vm is None:
        return ""
    line = VM_LINE[vm.status]
    if vm.status is VmStatus.RUNNING:
        line += f" — {vm.ip} · {connect_hint(view)}"
        if vm.running_at:
            # Start time and rate, not a total: the card is not redrawn as the hours pass.
            line += f" · up since {when(vm.running_at)} at {money(view.spec.cost.usd_per_hour)}/h"
        if vm.expires_at:
            line += f" · expires {when(vm.expires_at)}"
    elif vm.detail and vm.status in (VmStatus.PROVISIONING, VmStatus.FAILED):
        line += f" — {escape(vm.detail)}"
    return line


def decision_line(view: RequestView) -> str:
    who = f" by <@{view.approver}>" if view.approver else ""
    at = f" at {when(view.decided_at)}" if view.decided_at else ""
    return {
        RequestStatus.APPROVED: f"Approved{who}{at}",
        RequestStatus.REJECTED: f"🚫 Rejected{who}{at}",
        RequestStatus.CANCELLED: f"Cancelled{at}",
        RequestStatus.EXPIRED: "⌛ Expired before anyone approved it",
        RequestStatus.PENDING_APPROVAL: "🔐 Waiting for an approver in the admin channel",
    }.get(view.status, "")


def request_actions(view: RequestView) -> Block:
    value = str(view.id)
    first = (
        _button("Approve", APPROVE, value, "primary")
        if view.policy_decision == "allow"
        else _button("Request approval", REQUEST_APPROVAL, value, "primary")
    )
    if view.policy_decision == "deny":
        first = _button("Use the nearest allowed", USE_NEAREST, value, "primary")
    elements = [first, _button("Modify", MODIFY, value), _button("Cancel", CANCEL, value, "danger")]
    return {"type": "actions", "block_id": f"request-{view.id}", "elements": elements}


def suggestion_card(view: RequestView) -> list[Block]:
    spec = view.spec
    label = STATUS_LABEL[view.status]
    head = f"🖥  *{spec.name}* · {label} for <@{view.requester}>"
    if view.original_text:
        head += f"\n>{escape(clip(' '.join(view.original_text.split()), 500))}"
    engine = {"rules": "rules engine", "llm": "AI", "modal": "edited by hand"}[spec.source]
    blocks: list[Block] = [
        {"type": "section", "text": _mrkdwn(head)},
        {"type": "section", "fields": spec_fields(view)},
        {
            "type": "context",
            "elements": [_mrkdwn(f"Why: {escape(spec.rationale or '—')}   ({engine})", 2000)],
        },
    ]
    if view.status is RequestStatus.SUGGESTED:
        blocks.append(request_actions(view))
    elif view.status is RequestStatus.PENDING_APPROVAL:
        # Approvers may decide right here too; the server checks who is clicking.
        blocks.append({"type": "context", "elements": [_mrkdwn(decision_line(view), 2000)]})
        value = str(view.id)
        blocks.append(
            {
                "type": "actions",
                "block_id": f"request-{view.id}",
                "elements": [
                    _button("Approve", ADMIN_APPROVE, value, "primary"),
                    _button("Reject", ADMIN_REJECT, value),
                    _button("Cancel", CANCEL, value, "danger"),
                ],
            }
        )
    else:
        lines = [decision_line(view), vm_line(view)]
        text = "\n".join(line for line in lines if line)
        blocks.append({"type": "context", "elements": [_mrkdwn(text, 2000)]})
    return blocks


def card_text(view: RequestView) -> str:
    """Plain fallback for notifications and screen readers."""
    spec = view.spec
    return clip(
        f"{spec.name}: {spec.machine_type} in {spec.region}, "
        f"{money(spec.cost.usd_per_hour)}/h — {STATUS_LABEL[view.status]}",
        300,
    )


def status_note(view: RequestView, event: str, detail: str = "") -> str | None:
    """The threaded status update for an event, or None when the event needs no message."""
    vm = view.vm
    safe = escape(detail)
    if event == "queued":
        return f"⏳ Queued — approved by <@{view.approver}>" if view.approver else "⏳ Queued"
    if event == "provisioning":
        return f"🔧 Provisioning in {safe or (vm.zone if vm else view.spec.region)}…"
    if event == "progress":
        return f"📦 {safe}…"
    if event == "running":
        return vm_line(view)
    if event == "failed":
        return (
            f"❌ Failed — {safe}. The admins have been told; "
            "ask again with /vm to try another size or region."
        )
    if event == "extended":
        return (
            f"⏳ Extended by {safe}; expires {when(vm.expires_at)}."
            if vm and vm.expires_at
            else None
        )
    if event == "revised":
        return f"✏️ Updated: {safe}" if safe else "✏️ Updated."
    if event == "expired":
        return (
            "⌛ Nobody approved this in time, so it expired. Ask again with /vm if you still "
            "need it."
        )
    if event == "expiring":
        return (
            f"⏰ Expires {when(vm.expires_at)}; I've sent <@{view.requester}> a reminder."
            if (vm and vm.expires_at)
            else None
        )
    if event == "stopping":
        return "⏸️ Stopping…"
    if event == "stopped":
        return f"⏸️ Stopped. `/vm start {view.spec.name}` brings it back (with a new address)."
    if event == "destroying":
        return f"🗑️ Destroying{' — ' + safe if safe else ''}…"
    if event == "destroyed":
        return "🗑️ Destroyed. Thanks for cleaning up!"
    if event == "pending_approval":
        return "🔐 Sent to the admins for approval. You'll see the decision here."
    if event == "rejected":
        who = f" by <@{view.approver}>" if view.approver else ""
        return f"🚫 Rejected{who}: {safe}" if safe else f"🚫 Rejected{who}."
    if event == "cancelled":
        return "Cancelled. Nothing was created."
    return None


def admin_card(view: RequestView) -> list[Block]:
    spec = view.spec
    gpu = f" + {spec.gpu.count}× {spec.gpu.type}" if spec.gpu else ""
    ttl = f" · {hours(spec.ttl_hours)}" if spec.ttl_hours else " · no expiry"
    total = f" · ≈ {money(spec.cost.usd_total)}" if spec.cost.usd_total is not None else ""
    text = (
        f"🔐 <@{view.requester}> asks for *{spec.name}* · {spec.machine_type}{gpu}{ttl}{total}\n"
        f"Needs approval: {escape(view.policy_reason)}"
    )
    blocks: list[Block] = [
        {"type": "section", "text": _mrkdwn(text)},
        {"type": "section", "fields": spec_fields(view)},
    ]
    if view.status is RequestStatus.PENDING_APPROVAL:
        value = str(view.id)
        blocks.append(
            {
                "type": "actions",
                "block_id": f"admin-{view.id}",
                "elements": [
                    _button("Approve", ADMIN_APPROVE, value, "primary"),
                    _button("Reject", ADMIN_REJECT, value, "danger"),
                ],
            }
        )
    else:
        blocks.append({"type": "context", "elements": [_mrkdwn(decision_line(view), 2000)]})
    return blocks


def failure_alert(view: RequestView, reason: str) -> list[Block]:
    text = (
        f"❌ Provisioning failed for *{view.spec.name}* (requested by <@{view.requester}>, "
        f"{view.spec.machine_type} in {view.spec.region}): {escape(reason)}"
    )
    return [{"type": "section", "text": _mrkdwn(text)}]


def _text_modal(
    *,
    callback_id: str,
    title: str,
    submit: str,
    close: str,
    block_id: str,
    action_id: str,
    label: str,
    max_length: int = MAX_PLAIN_INPUT,
    hint: str | None = None,
    initial: str | None = None,
    placeholder: str | None = None,
    metadata: str | None = None,
) -> Block:
    """A modal with one multi-line text field: the shape of every form but Modify."""
    element: Block = {
        "type": "plain_text_input",
        "action_id": action_id,
        "multiline": True,
        "max_length": max_length,
    }
    if initial is not None:
        element["initial_value"] = clip(initial, max_length)
    if placeholder is not None:
        element["placeholder"] = {"type": "plain_text", "text": placeholder}
    field: Block = {
        "type": "input",
        "block_id": block_id,
        "label": {"type": "plain_text", "text": label},
        "element": element,
    }
    if hint is not None:
        field["hint"] = {"type": "plain_text", "text": hint}
    modal: Block = {"type": "modal", "callback_id": callback_id}
    if metadata is not None:
        modal["private_metadata"] = metadata
    modal |= {
        "title": {"type": "plain_text", "text": title},
        "submit": {"type": "plain_text", "text": submit},
        "close": {"type": "plain_text", "text": close},
        "blocks": [field],
    }
    return modal


def request_modal(*, callback_id: str, title: str, initial: str = "", metadata: str = "") -> Block:
    return _text_modal(
        callback_id=callback_id,
        title=title,
        submit="Suggest",
        close="Cancel",
        block_id=REQUEST_TEXT_BLOCK,
        action_id=REQUEST_TEXT_INPUT,
        label="What do you need?",
        hint="e.g. a Django dev server with Postgres and Redis for 2 hours",
        initial=initial,
        metadata=metadata,
    )


HELP = (
    "*Ask for a VM in plain words:*\n"
    "• `/vm I need a Django dev server with Postgres and Redis for 2 hours`\n"
    "• `/vm 4 cpus 16GB ubuntu 24.04 in London for a day`\n"
    "• `/vm` alone opens a form. You can also DM me or @-mention me.\n"
    "I answer with a priced suggestion; press *Approve* and I build it and report in the thread. "
    'Reply in the thread ("make it 4 cpus", "London instead") to change it first.\n'
    "*Your VMs:* `/vm list` · `/vm status NAME` · `/vm extend NAME 2h` · `/vm stop NAME` · "
    "`/vm start NAME` · `/vm destroy NAME`\n"
    "*Access:* `/vm key` registers your SSH public key.\n"
    "*History:* `/vm audit NAME` (admins: `/vm audit export`) · "
    "*Admins:* `/vm admin role @user ROLE`, `/vm admin roles`"
)


def cost_so_far(view: RequestView, now: datetime) -> float:
    vm = view.vm
    if vm is None or vm.running_at is None:
        return 0.0
    hours_up = max(0.0, (now - vm.running_at).total_seconds() / 3600)
    return round(hours_up * view.spec.cost.usd_per_hour, 4)


def vm_summary(view: RequestView, now: datetime) -> str:
    vm = view.vm
    assert vm is not None
    parts = [f"*{vm.name}*", VM_LINE[vm.status], vm.zone or vm.region]
    if vm.ip and vm.status is VmStatus.RUNNING:
        parts.append(vm.ip)
    parts.append(f"{money(cost_so_far(view, now))} so far")
    if vm.expires_at:
        parts.append(f"expires {when(vm.expires_at)}")
    return " · ".join(parts)


def vm_buttons(view: RequestView) -> Block | None:
    vm = view.vm
    if vm is None:
        return None
    elements = []
    if vm.status in (VmStatus.RUNNING, VmStatus.STOPPED) and vm.expires_at is not None:
        elements.append(_button("Extend 1h", VM_EXTEND, f"{vm.name}:1"))
    if vm.status is VmStatus.RUNNING:
        elements.append(_button("Stop", VM_STOP, vm.name))
    if vm.status is VmStatus.STOPPED:
        elements.append(_button("Start", VM_START, vm.name))
    if vm.status in (VmStatus.RUNNING, VmStatus.STOPPED, VmStatus.FAILED, VmStatus.QUEUED):
        elements.append(_button("Destroy", VM_DESTROY, vm.name, "danger"))
    if not elements:
        return None
    return {"type": "actions", "block_id": f"vm-{vm.id}", "elements": elements}


def vm_list(views: list[RequestView], now: datetime, *, limit: int = 45) -> list[Block]:
    if not views:
        return [{"type": "section", "text": _mrkdwn("No VMs. Ask for one with `/vm …`.")}]
    blocks: list[Block] = [
        {"type": "section", "text": _mrkdwn(vm_summary(view, now))} for view in views[:limit]
    ]
    if len(views) > limit:
        more = len(views) - limit
        blocks.append({"type": "context", "elements": [_mrkdwn(f"…and {more} more.")]})
    return blocks


def vm_status(view: RequestView, now: datetime) -> list[Block]:
    blocks: list[Block] = [
        {"type": "section", "text": _mrkdwn(vm_summary(view, now))},
        {"type": "section", "fields": spec_fields(view)},
    ]
    hint = connect_hint(view)
    if hint and view.vm and view.vm.status is VmStatus.RUNNING:
        blocks.append({"type": "context", "elements": [_mrkdwn(f"Connect: {hint}", 2000)]})
    buttons = vm_buttons(view)
    if buttons:
        blocks.append(buttons)
    return blocks


def confirm_destroy(view: RequestView) -> list[Block]:
    vm = view.vm
    assert vm is not None
    return [
        {
            "type": "section",
            "text": _mrkdwn(
                f"Destroy *{vm.name}* ({view.spec.machine_type} in {vm.zone or vm.region})? "
                "Its disk goes with it; this cannot be undone."
            ),
        },
        {
            "type": "actions",
            "block_id": f"confirm-{vm.id}",
            "elements": [
                _button(f"Destroy {vm.name}", VM_DESTROY_CONFIRM, vm.name, "danger"),
                _button("Keep it", DISMISS, vm.name),
            ],
        },
    ]


def expiry_reminder(view: RequestView) -> list[Block]:
    vm = view.vm
    assert vm is not None and vm.expires_at is not None
    text = (
        f"⏰ *{vm.name}* expires {when(vm.expires_at)} and will then be destroyed. Need it longer?"
    )
    return [
        {"type": "section", "text": _mrkdwn(text)},
        {
            "type": "actions",
            "block_id": f"remind-{vm.id}",
            "elements": [
                _button("Extend 1h", VM_EXTEND, f"{vm.name}:1", "primary"),
                _button("Extend 4h", VM_EXTEND, f"{vm.name}:4"),
                _button("Extend 1 day", VM_EXTEND, f"{vm.name}:24"),
                _button("Destroy now", VM_DESTROY_CONFIRM, vm.name, "danger"),
            ],
        },
    ]


def roles_list(people: list[tuple[str, str, str | None]]) -> list[Block]:
    """`people` is (user id, role, display name)."""
    if not people:
        return [{"type": "section", "text": _mrkdwn("Nobody has used the bot yet.")}]
    lines = [f"• <@{uid}> · {role}" for uid, role, _ in people[:200]]
    return [
        {"type": "section", "text": _mrkdwn("\n".join(lines[i : i + 40]))}
        for i in range(0, len(lines), 40)
    ][:49]


def audit_detail(details: dict[str, Any]) -> str:
    """A short, readable line from an audit row's details."""
    skip = {"spec", "name"}
    parts = [f"{k}={v}" for k, v in sorted(details.items()) if k not in skip and v is not None]
    return clip(", ".join(parts), 200)


def history(name: str, entries: list[tuple[datetime, str, str, str]]) -> list[Block]:
    """`entries` is (when, who, action, detail), oldest first."""
    lines = [
        f"{when(at)} · {who} · {action}" + (f" · {escape(detail)}" if detail else "")
        for at, who, action, detail in entries[-120:]
    ]
    blocks: list[Block] = [
        {"type": "header", "text": {"type": "plain_text", "text": clip(f"History of {name}", 150)}}
    ]
    blocks += [
        {"type": "section", "text": _mrkdwn("\n".join(lines[i : i + 30]))}
        for i in range(0, len(lines), 30)
    ]
    return blocks[:50]


REJECT_VIEW = "vm_reject_view"
REASON_BLOCK = "reason"
REASON_INPUT = "text"


def reject_modal(request_id: int) -> Block:
    return _text_modal(
        callback_id=REJECT_VIEW,
        title="Reject the request",
        submit="Reject",
        close="Back",
        block_id=REASON_BLOCK,
        action_id=REASON_INPUT,
        label="Why? The requester will see this.",
        max_length=500,
        metadata=str(request_id),
    )


def key_modal() -> Block:
    return _text_modal(
        callback_id=KEY_VIEW,
        title="Your SSH public key",
        submit="Register",
        close="Cancel",
        block_id=KEY_BLOCK,
        action_id=KEY_INPUT,
        label="Public key (the .pub file)",
        hint="ssh-ed25519, ecdsa or RSA of 3072 bits or more. Never paste a private key.",
        placeholder="ssh-ed25519 AAAA… you@laptop",
    )


def home_view(
    views: list[RequestView],
    now: datetime,
    *,
    pending: Sequence[RequestView] = (),
    queue: Sequence[RequestView] = (),
) -> Block:
    blocks: list[Block] = [{"type": "header", "text": {"type": "plain_text", "text": "Your VMs"}}]
    if not views:
        blocks.append({"type": "section", "text": _mrkdwn("No VMs. Ask with `/vm …`.")})
    for view in views[:40]:  # 2 blocks each: 40 VMs leave room for the rest in Slack's 100
        blocks.append({"type": "section", "text": _mrkdwn(vm_summary(view, now))})
        buttons = vm_buttons(view)
        if buttons:
            blocks.append(buttons)
    if len(views) > 40:
        more = f"…and {len(views) - 40} more: `/vm list` shows them all."
        blocks.append({"type": "context", "elements": [_mrkdwn(more)]})
    if pending:
        blocks.append({"type": "header", "text": {"type": "plain_text", "text": "Your requests"}})
        for view in pending[:5]:
            blocks.append(
                {
                    "type": "section",
                    "text": _mrkdwn(
                        f"*{view.spec.name}* · {STATUS_LABEL[view.status]}"
                        f" · {view.spec.machine_type}"
                    ),
                }
            )
    if queue:
        blocks.append(
            {"type": "header", "text": {"type": "plain_text", "text": "Waiting for your approval"}}
        )
        for view in queue[:3]:
            blocks.extend(admin_card(view)[:1])
            value = str(view.id)
            blocks.append(
                {
                    "type": "actions",
                    "block_id": f"home-admin-{view.id}",
                    "elements": [
                        _button("Approve", ADMIN_APPROVE, value, "primary"),
                        _button("Reject", ADMIN_REJECT, value, "danger"),
                    ],
                }
            )
    return {"type": "home", "blocks": blocks[:100]}
