"""Governance end to end on a fake clock: a request that waits too long for an approver expires,
and a monthly budget that runs out mid-month denies a request and offers a smaller one.

Both run the real app over HTTP on a runtime of their own (see `clocked_stack`) so the clock, and
for the budget the policy file, are the test's.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select

from bot import blocks as ids
from bot.slack_emulator import Message
from db.models import RequestStatus, User, Vm, VmRequest, VmStatus
from provisioning.budget import month_start
from tests.conftest import ADMIN_CHANNEL, Stack, unique
from tests.slackflow import answers, ask, buttons, click, command, thread_texts, wait_answer
from tests.test_lifecycle_clock import clocked_stack

ADMIN = "U0BOOTADMIN"
GPU = "a GPU box with one T4 for 2 hours"


def request_of(stack: Stack, card: Message) -> VmRequest:
    with stack.runtime.sessions() as session:
        return session.scalars(select(VmRequest).where(VmRequest.message_ts == card.ts)).one()


def vm_count(stack: Stack, request_id: int) -> int:
    with stack.runtime.sessions() as session:
        return session.scalar(select(func.count(Vm.id)).where(Vm.request_id == request_id))


def context_text(message: Message) -> str:
    return " ".join(
        element.get("text", "")
        for block in message.blocks
        if block["type"] == "context"
        for element in block["elements"]
    )


def test_a_request_nobody_approves_expires(stack_env, emulator, tmp_path) -> None:
    # The clock starts now and moves forward: expire_pending closes every request that waited
    # too long in the shared database, which only ever closes other tests' leftovers.
    with clocked_stack(stack_env, emulator, tmp_path) as (stack, clock):
        emu = stack.emulator
        user, channel = unique("U"), unique("C")
        card = ask(stack, user, channel, GPU)
        assert set(buttons(card)) == {ids.REQUEST_APPROVAL, ids.MODIFY, ids.CANCEL}
        click(stack, user, card, ids.REQUEST_APPROVAL)
        name = request_of(stack, card).spec["name"]
        admin_card = emu.wait_for(
            lambda e: next(
                (m for m in e.messages(ADMIN_CHANNEL) if m.text == f"Approval needed for {name}"),
                None,
            )
        )
        assert ids.ADMIN_APPROVE in buttons(admin_card)
        emu.wait_for(
            lambda e: (
                "🔐 Sent to the admins for approval. You'll see the decision here."
                in thread_texts(e, card)
            )
        )
        request_id = request_of(stack, card).id
        assert request_id not in stack.runtime.requests.expire_pending()  # not yet

        clock.advance(hours=25)  # the policy's default: pending requests expire after 24 h
        assert request_id in stack.runtime.requests.expire_pending()
        req = request_of(stack, card)
        assert req.status is RequestStatus.EXPIRED and req.decided_at == clock.now()

        # Every copy of the card says so, and the thread tells the requester.
        emu.wait_for(
            lambda e: (
                "⌛ Nobody approved this in time, so it expired. Ask again with /vm if you still "
                "need it." in thread_texts(e, card)
            )
        )
        for copy in (emu.message(channel, card.ts), emu.message(ADMIN_CHANNEL, admin_card.ts)):
            assert copy is not None and not buttons(copy)
            assert "⌛ Expired before anyone approved it" in context_text(copy)

        # A late Approve, from the admin channel's copy as it was, changes nothing.
        sentence = "This request was already expired."
        before = answers(emu, ADMIN_CHANNEL).count(sentence)
        click(stack, ADMIN, admin_card, ids.ADMIN_APPROVE)
        emu.wait_for(lambda e: answers(e, ADMIN_CHANNEL).count(sentence) == before + 1)
        assert request_of(stack, card).status is RequestStatus.EXPIRED
        assert vm_count(stack, request_id) == 0


def spent_this_month(stack: Stack, user: str, now: datetime, usd: float) -> None:
    """Record that `user` ran a VM for 10 hours earlier this month, costing `usd` in all."""
    start = month_start(now) + timedelta(days=1)
    with stack.runtime.sessions.begin() as session:
        person = session.scalars(select(User).where(User.slack_user_id == user)).one()
        spec = {"name": f"old-{user.lower()}", "vcpus": 2, "cost": {"usd_per_hour": usd / 10}}
        req = VmRequest(
            requester_id=person.id,
            original_text="an earlier box",
            spec=spec,
            status=RequestStatus.APPROVED,
            decided_at=start,
        )
        session.add(req)
        session.flush()
        session.add(
            Vm(
                request_id=req.id,
                name=spec["name"],
                backend="local",
                region="us-central1",
                status=VmStatus.DESTROYED,
                running_at=start,
                deleted_at=start + timedelta(hours=10),
            )
        )


def test_a_budget_that_runs_out_mid_month(stack_env, emulator, tmp_path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text("roles:\n  requester:\n    monthly_budget_usd: 5\n", encoding="utf-8")
    now = datetime.now(UTC)
    mid_month = datetime(now.year, now.month, 15, 12, 0, tzinfo=UTC)
    with clocked_stack(
        stack_env, emulator, tmp_path / "cloud", start=mid_month, VMBOT_POLICY_FILE=str(policy)
    ) as (stack, clock):
        emu = stack.emulator
        user, tight, channel = unique("U"), unique("U"), unique("C")
        for person in (user, tight):
            admin_channel = unique("C")
            command(stack, ADMIN, admin_channel, f"admin role <@{person}> requester")
            wait_answer(emu, admin_channel, f"<@{person}> is now requester.")
        spent_this_month(stack, user, clock.now(), 4.5)  # $0.50 of $5 left
        spent_this_month(stack, tight, clock.now(), 5.0)  # nothing left

        # 4 vCPUs for 8 hours costs ≈ $1.11: over what is left, so the card says no and why.
        card = ask(stack, user, channel, "4 cpus 16GB for 8 hours")
        reason = "this would cost ≈ $1.11 and you have $0.50 left of your $5 monthly budget"
        policy_field = card.blocks[1]["fields"][-1]["text"]
        assert "⛔ denied" in policy_field and reason in policy_field
        assert "$0.50 of $5 left this month" in policy_field
        assert set(buttons(card)) == {ids.USE_NEAREST, ids.MODIFY, ids.CANCEL}
        request_id = request_of(stack, card).id

        # Approving anyway (a forged Approve, then an admin's) is refused on the server.
        for who, action in ((user, ids.APPROVE), (ADMIN, ids.ADMIN_APPROVE)):
            stack.wire.send(
                stack.wire.block_action(
                    user=who,
                    channel=channel,
                    message_ts=card.ts,
                    action_id=action,
                    value=str(request_id),
                    response_url=emu.make_response_url(channel=channel, user=who),
                )
            )
        refused = f"This request is denied by policy: {reason}."
        emu.wait_for(lambda e: answers(e, channel).count(refused) == 2)
        assert request_of(stack, card).status is RequestStatus.SUGGESTED
        assert vm_count(stack, request_id) == 0

        # One click swaps in the nearest spec the budget pays for: the same box for 3 hours.
        click(stack, user, card, ids.USE_NEAREST)
        note = emu.wait_for(
            lambda e: next((t for t in thread_texts(e, card) if t.startswith("✏️ Updated")), None)
        )
        assert "hours 8 → 3" in note
        req = request_of(stack, card)
        assert req.spec["machine_type"] == "e2-standard-4" and req.spec["ttl_hours"] == 3
        assert req.spec["cost"]["usd_total"] <= 0.5 and req.policy_decision == "allow"
        updated = emu.message(channel, card.ts)
        assert updated is not None and ids.APPROVE in buttons(updated)

        # With nothing left, no smaller VM fits either, and the answer says so.
        tight_channel = unique("C")
        tight_card = ask(stack, tight, tight_channel, "a small flask box for 2 hours")
        assert ids.USE_NEAREST in buttons(tight_card)
        click(stack, tight, tight_card, ids.USE_NEAREST)
        nothing = (
            "No smaller VM would be allowed either (this would cost ≈ $0.04 and you have $0 left "
            "of your $5 monthly budget). Cancel it, or ask an admin."
        )
        emu.wait_for(lambda e: nothing in answers(e, tight_channel))
        assert request_of(stack, tight_card).policy_decision == "deny"
