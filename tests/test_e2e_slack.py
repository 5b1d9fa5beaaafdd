"""The whole path through Slack's wire format: a signed /vm, the card, Approve, a real Celery
worker on Redis, threaded status updates, and a running VM in PostgreSQL."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor

from sqlalchemy import func, select

from bot import blocks as ids
from bot.slack_emulator import Message
from db.models import AuditLog, RequestStatus, Vm, VmRequest, VmStatus
from tests.conftest import Stack, unique
from tests.slackflow import ask, assert_valid_blocks, buttons, click, thread_texts


def test_request_approve_provision_running(stack: Stack, worker) -> None:
    user, channel = unique("U"), unique("C")
    card = ask(stack, user, channel)

    assert_valid_blocks(card.blocks)
    head = card.blocks[0]["text"]["text"]
    assert "suggested for" in head and f"<@{user}>" in head
    fields = " ".join(f["text"] for f in card.blocks[1]["fields"])
    for expected in ("Machine", "e2-", "postgresql", "redis", "django", "auto-approve", "2 h"):
        assert expected in fields
    assert set(buttons(card)) == {ids.APPROVE, ids.MODIFY, ids.CANCEL}

    assert click(stack, user, card, ids.APPROVE).status == 200

    emu = stack.emulator
    texts = emu.wait_for(
        lambda e: (t := thread_texts(e, card)) and any(x.startswith("✅ Running") for x in t) and t,
        timeout=30,
    )
    assert texts[0] == f"⏳ Queued — approved by <@{user}>"
    assert texts[1].startswith("🔧 Provisioning in us-")
    assert any(t.startswith("📦 Installing") and "postgresql" in t for t in texts)
    running = next(t for t in texts if t.startswith("✅ Running"))
    assert "203.0.113." in running and "gcloud compute ssh" in running

    final = emu.message(card.channel, card.ts)
    assert final is not None and final.updates >= 3
    assert_valid_blocks(final.blocks)
    assert not buttons(final), "buttons are replaced once the request is approved"
    status = final.blocks[-1]["elements"][0]["text"]
    assert f"Approved by <@{user}>" in status and "✅ Running" in status

    with stack.runtime.sessions() as session:
        req = session.scalars(select(VmRequest).where(VmRequest.message_ts == card.ts)).one()
        assert req.status is RequestStatus.APPROVED
        assert req.approver is not None and req.approver.slack_user_id == user
        vm = session.scalars(select(Vm).where(Vm.request_id == req.id)).one()
        assert vm.status is VmStatus.RUNNING
        assert vm.ip is not None and vm.ip.startswith("203.0.113.")
        assert vm.expires_at is not None and vm.running_at is not None
        assert round((vm.expires_at - vm.running_at).total_seconds()) == 2 * 3600
        actions = session.scalars(
            select(AuditLog.action)
            .where(AuditLog.target.in_([f"request:{req.id}", f"vm:{vm.id}"]))
            .order_by(AuditLog.id)
        ).all()
        assert actions == ["request.suggested", "request.approved", "vm.provisioning", "vm.running"]


def test_every_posted_message_is_valid_block_kit(stack: Stack, worker) -> None:
    user, channel = unique("U"), unique("C")
    card = ask(stack, user, channel, "4 cpus 16GB ubuntu 24.04 for 3 hours")
    click(stack, user, card, ids.APPROVE)
    stack.emulator.wait_for(
        lambda e: any(t.startswith("✅ Running") for t in thread_texts(e, card)), timeout=30
    )
    for message in stack.emulator.messages(channel):
        if message.blocks:
            assert_valid_blocks(message.blocks)
        assert len(message.text) <= 4000


def test_twenty_concurrent_approvals_make_one_vm(stack: Stack, worker) -> None:
    user, channel = unique("U"), unique("C")
    card = ask(stack, user, channel)
    with ThreadPoolExecutor(max_workers=20) as pool:
        replies = list(pool.map(lambda _: click(stack, user, card, ids.APPROVE), range(20)))
    assert all(r.status == 200 for r in replies)

    emu = stack.emulator
    emu.wait_for(
        lambda e: any(t.startswith("✅ Running") for t in thread_texts(e, card)), timeout=30
    )
    # The losers are told, privately, that it was already approved.
    already = emu.wait_for(
        lambda e: (
            n
            if (
                n := sum(
                    "already approved" in r.payload.get("text", "")
                    for r in e.responses
                    if r.channel == channel
                )
            )
            >= 19
            else None
        )
    )
    assert already == 19
    time.sleep(1.0)  # give any duplicate job time to show itself
    texts = thread_texts(emu, card)
    assert sum(t.startswith("⏳ Queued") for t in texts) == 1
    assert sum(t.startswith("✅ Running") for t in texts) == 1
    with stack.runtime.sessions() as session:
        req_id = session.scalar(select(VmRequest.id).where(VmRequest.message_ts == card.ts))
        assert session.scalar(select(func.count(Vm.id)).where(Vm.request_id == req_id)) == 1
        assert (
            session.scalar(
                select(func.count(AuditLog.id)).where(
                    AuditLog.action == "request.approved", AuditLog.target == f"request:{req_id}"
                )
            )
            == 1
        )
        vm_id = session.scalar(select(Vm.id).where(Vm.request_id == req_id))
        assert (
            session.scalar(
                select(func.count(AuditLog.id)).where(
                    AuditLog.action == "vm.provisioning", AuditLog.target == f"vm:{vm_id}"
                )
            )
            == 1
        )


def test_cancel_closes_the_request(stack: Stack) -> None:
    user, channel = unique("U"), unique("C")
    card = ask(stack, user, channel)
    assert click(stack, user, card, ids.CANCEL).status == 200
    emu = stack.emulator
    emu.wait_for(lambda e: "Cancelled" in json.dumps(e.message(card.channel, card.ts).blocks))
    assert emu.wait_for(lambda e: thread_texts(e, card)) == ["Cancelled. Nothing was created."]
    # A late Approve on a cancelled request changes nothing and says why.
    click(stack, user, card, ids.APPROVE)
    emu.wait_for(
        lambda e: any(
            "already cancelled" in r.payload.get("text", "")
            for r in e.responses
            if r.channel == channel
        )
    )
    with stack.runtime.sessions() as session:
        req = session.scalars(select(VmRequest).where(VmRequest.message_ts == card.ts)).one()
        assert req.status is RequestStatus.CANCELLED
        assert not req.vms


def test_someone_else_cannot_approve_or_cancel(stack: Stack) -> None:
    owner, stranger, channel = unique("U"), unique("U"), unique("C")
    card = ask(stack, owner, channel)
    click(stack, stranger, card, ids.APPROVE)
    click(stack, stranger, card, ids.CANCEL)
    emu = stack.emulator
    emu.wait_for(
        lambda e: sum(r.channel == channel and r.user == stranger for r in e.responses) >= 2
    )
    texts = [r.payload["text"] for r in emu.responses if r.channel == channel]
    assert "Only the requester or an approver can approve this request." in texts
    assert "Only the requester or an approver can cancel this request." in texts
    with stack.runtime.sessions() as session:
        req = session.scalars(select(VmRequest).where(VmRequest.message_ts == card.ts)).one()
        assert req.status is RequestStatus.SUGGESTED


def test_expensive_request_goes_to_admin_channel(stack: Stack, worker) -> None:
    user, channel = unique("U"), unique("C")
    card = ask(stack, user, channel, "a machine with an A100 GPU for 8 hours")
    assert set(buttons(card)) == {ids.REQUEST_APPROVAL, ids.MODIFY, ids.CANCEL}
    click(stack, user, card, ids.REQUEST_APPROVAL)
    emu = stack.emulator
    admin_card = emu.wait_for(
        lambda e: next(
            (m for m in e.messages(ADMIN) if card_name(card) in json.dumps(m.blocks)), None
        )
    )
    assert_valid_blocks(admin_card.blocks)
    assert set(buttons(admin_card)) == {ids.ADMIN_APPROVE, ids.ADMIN_REJECT}
    # Four-eyes: the requester cannot approve their own request, even from the admin card.
    click(stack, user, admin_card, ids.ADMIN_APPROVE)
    emu.wait_for(
        lambda e: any("it cannot be you" in r.payload.get("text", "") for r in e.responses)
    )
    click(stack, "U0BOOTADMIN", admin_card, ids.ADMIN_REJECT)
    modal = emu.wait_for(
        lambda e: next(
            (
                v
                for v in e.views
                if v.view.get("callback_id") == ids.REJECT_VIEW
                and v.view.get("private_metadata") == buttons(admin_card)[ids.ADMIN_REJECT]["value"]
            ),
            None,
        )
    )

    def reject(reason: str):
        return stack.wire.send(
            stack.wire.view_submission(
                user="U0BOOTADMIN",
                callback_id=ids.REJECT_VIEW,
                metadata=modal.view["private_metadata"],
                values={
                    ids.REASON_BLOCK: {
                        ids.REASON_INPUT: {"type": "plain_text_input", "value": reason}
                    }
                },
            )
        )

    assert "errors" in reject("  ").body  # a reason is required, shown on the field
    assert reject("No A100s this week; try an L4").status == 200
    emu.wait_for(
        lambda e: (
            "🚫 Rejected by <@U0BOOTADMIN>: No A100s this week; try an L4" in thread_texts(e, card)
        )
    )
    updated = emu.message(admin_card.channel, admin_card.ts)
    assert updated is not None and "Rejected" in json.dumps(updated.blocks)
    assert not buttons(updated)


ADMIN = "CADMINTEST"


def card_name(card: Message) -> str:
    return card.blocks[0]["text"]["text"].split("*")[1]
