"""Block Kit, built only here, by pure functions of plain views.

Action ids are constants shared with the listeners and the tests. Every builder's output is
validated against slack_sdk's block models in the tests, and stays within Slack's limits.
"""

from __future__ import annotations

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


def _when(moment: datetime) -> str:
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
        expires = _when(view.vm.expires_at)
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
        if vm.expires_at:
            line += f" · expires {_when(vm.expires_at)}"
    elif vm.detail and vm.status in (VmStatus.PROVISIONING, VmStatus.FAILED):
        line += f" — {escape(vm.detail)}"
    return line


def decision_line(view: RequestView) -> str:
    who = f" by <@{view.approver}>" if view.approver else ""
    when = f" at {_when(view.decided_at)}" if view.decided_at else ""
    return {
        RequestStatus.APPROVED: f"Approved{who}{when}",
        RequestStatus.REJECTED: f"🚫 Rejected{who}{when}",
        RequestStatus.CANCELLED: f"Cancelled{when}",
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
    elements = [first] if view.policy_decision != "deny" else []
    elements += [_button("Modify", MODIFY, value), _button("Cancel", CANCEL, value, "danger")]
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
    if event == "destroying":
        return f"🗑️ Destroying{' — ' + safe if safe else ''}…"
    if event == "destroyed":
        return "🗑️ Destroyed. Thanks for cleaning up!"
    if event == "pending_approval":
        return "🔐 Sent to the admins for approval. You'll see the decision here."
    if event == "rejected":
        return f"🚫 Rejected by <@{view.approver}>." if view.approver else "🚫 Rejected."
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


def request_modal(*, callback_id: str, title: str, initial: str = "", metadata: str = "") -> Block:
    return {
        "type": "modal",
        "callback_id": callback_id,
        "private_metadata": metadata,
        "title": {"type": "plain_text", "text": title},
        "submit": {"type": "plain_text", "text": "Suggest"},
        "close": {"type": "plain_text", "text": "Cancel"},
        "blocks": [
            {
                "type": "input",
                "block_id": REQUEST_TEXT_BLOCK,
                "label": {"type": "plain_text", "text": "What do you need?"},
                "hint": {
                    "type": "plain_text",
                    "text": "e.g. a Django dev server with Postgres and Redis for 2 hours",
                },
                "element": {
                    "type": "plain_text_input",
                    "action_id": REQUEST_TEXT_INPUT,
                    "multiline": True,
                    "max_length": MAX_PLAIN_INPUT,
                    "initial_value": clip(initial, MAX_PLAIN_INPUT),
                },
            }
        ],
    }


HELP = (
    "*Ask for a VM in plain words:*\n"
    "• `/vm I need a Django dev server with Postgres and Redis for 2 hours`\n"
    "• `/vm 4 cpus 16GB ubuntu 24.04 in London for a day`\n"
    "• `/vm` alone opens a form.\n"
    "I'll answer with a priced suggestion; press *Approve* and I'll build it and report here.\n"
    "*Other commands:* `/vm list` shows your VMs · `/vm help` shows this."
)


def vm_list(views: list[RequestView]) -> list[Block]:
    if not views:
        return [{"type": "section", "text": _mrkdwn("You have no VMs. Ask with `/vm …`.")}]
    lines = []
    for view in views:
        vm = view.vm
        assert vm is not None
        where = vm.zone or vm.region
        lines.append(
            f"• *{vm.name}* · {VM_LINE[vm.status]} · {where}" + (f" · {vm.ip}" if vm.ip else "")
        )
    blocks: list[Block] = []
    for start in range(0, min(len(lines), 400), 20):
        blocks.append({"type": "section", "text": _mrkdwn("\n".join(lines[start : start + 20]))})
    return blocks[:49]


def home_view(views: list[RequestView]) -> Block:
    header: Block = {"type": "header", "text": {"type": "plain_text", "text": "Your VMs"}}
    return {"type": "home", "blocks": [header, *vm_list(views)][:100]}
