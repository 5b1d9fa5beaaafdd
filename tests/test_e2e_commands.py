"""Every /vm subcommand and VM button, end to end through signed Slack requests."""

from __future__ import annotations

import csv
import io
import json
import re
import time
import urllib.request
from dataclasses import dataclass

import pytest
from sqlalchemy import select

from bot import blocks as ids
from bot.slack_emulator import Message
from db.models import AuditLog, Role, User, Vm, VmStatus
from tests.conftest import Stack, unique
from tests.slackflow import (
    answers,
    ask,
    assert_valid_blocks,
    click,
    command,
    thread_texts,
    wait_answer,
)


@dataclass
class Running:
    user: str
    channel: str
    card: Message
    name: str


def running_vm(stack: Stack, text: str = "a small flask box for 2 hours") -> Running:
    user, channel = unique("U"), unique("C")
    card = ask(stack, user, channel, text)
    click(stack, user, card, ids.APPROVE)
    stack.emulator.wait_for(
        lambda e: any(t.startswith("✅ Running") for t in thread_texts(e, card)), timeout=30
    )
    name = card.blocks[0]["text"]["text"].split("*")[1]
    return Running(user, channel, card, name)


def vm_row(stack: Stack, name: str) -> Vm:
    with stack.runtime.sessions() as session:
        return session.scalars(select(Vm).where(Vm.name == name)).one()


def ephemeral_with(stack: Stack, channel: str, action_id: str) -> Message:
    return stack.emulator.wait_for(
        lambda e: next(
            (
                m
                for m in reversed(e.messages(channel))
                if m.ephemeral_user and action_id in json.dumps(m.blocks)
            ),
            None,
        )
    )


def test_help_and_unknown_subcommand(stack: Stack) -> None:
    user, channel = unique("U"), unique("C")
    command(stack, user, channel, "help")
    assert "/vm list" in wait_answer(stack.emulator, channel, "Ask for a VM in plain words")
    command(stack, user, channel, "lsit")
    wait_answer(stack.emulator, channel, "Did you mean `/vm list`")
    command(stack, user, channel, "extend some-vm soon")
    wait_answer(stack.emulator, channel, "I can't read `soon` as a duration")


def test_list_status_extend(stack: Stack, worker) -> None:
    vm = running_vm(stack)
    emu = stack.emulator
    command(stack, vm.user, vm.channel, "list")
    listing = emu.wait_for(
        lambda e: next(
            (
                r
                for r in e.responses
                if r.channel == vm.channel and r.payload.get("text", "").startswith("Your VMs")
            ),
            None,
        )
    )
    assert vm.name in json.dumps(listing.payload["blocks"])
    assert_valid_blocks(listing.payload["blocks"])

    command(stack, vm.user, vm.channel, f"status {vm.name}")
    status = emu.wait_for(
        lambda e: next(
            (
                r
                for r in e.responses
                if r.channel == vm.channel and "vm_extend" in json.dumps(r.payload.get("blocks"))
            ),
            None,
        )
    )
    assert "gcloud compute ssh" in json.dumps(status.payload["blocks"])

    before = vm_row(stack, vm.name).expires_at
    assert before is not None
    command(stack, vm.user, vm.channel, f"extend {vm.name} 1h")
    wait_answer(emu, vm.channel, f"`{vm.name}` now expires")
    after = vm_row(stack, vm.name).expires_at
    assert after is not None and round((after - before).total_seconds()) == 3600
    emu.wait_for(
        lambda e: any(t.startswith("⏳ Extended by 1 h") for t in thread_texts(e, vm.card))
    )

    # Over the requester's 72 h lifetime limit: refused, and nothing changes.
    command(stack, vm.user, vm.channel, f"extend {vm.name} 4d")
    wait_answer(emu, vm.channel, "the limit for its owner is 72 h")
    assert vm_row(stack, vm.name).expires_at == after


def test_destroy_asks_first_then_destroys(stack: Stack, worker) -> None:
    vm = running_vm(stack)
    emu = stack.emulator
    command(stack, vm.user, vm.channel, f"destroy {vm.name}")
    confirm = ephemeral_with(stack, vm.channel, ids.VM_DESTROY_CONFIRM)
    assert_valid_blocks(confirm.blocks)
    assert vm_row(stack, vm.name).status is VmStatus.RUNNING  # nothing happens before confirming
    click(stack, vm.user, confirm, ids.VM_DESTROY_CONFIRM)
    emu.wait_for(
        lambda e: "🗑️ Destroyed. Thanks for cleaning up!" in thread_texts(e, vm.card), timeout=20
    )
    row = vm_row(stack, vm.name)
    assert row.status is VmStatus.DESTROYED and row.deleted_at is not None
    assert vm.name not in [i.name for i in stack.runtime.backend.list_managed()]
    command(stack, vm.user, vm.channel, f"destroy {vm.name}")
    wait_answer(emu, vm.channel, "is destroyed already")


def test_others_cannot_touch_my_vm(stack: Stack, worker) -> None:
    vm = running_vm(stack)
    stranger, channel = unique("U"), unique("C")
    for verb in ("status", "destroy", "extend", "audit"):
        command(stack, stranger, channel, f"{verb} {vm.name}" + (" 1h" if verb == "extend" else ""))
    emu = stack.emulator
    emu.wait_for(lambda e: len(answers(e, channel)) >= 4)
    texts = answers(emu, channel)
    assert f"Only its owner or an approver can look at `{vm.name}`." in texts
    assert f"Only its owner or an admin can destroy `{vm.name}`." in texts
    assert f"Only its owner or an admin can extend `{vm.name}`." in texts
    assert f"Only its owner or an approver can see the history of `{vm.name}`." in texts
    assert vm_row(stack, vm.name).status is VmStatus.RUNNING


def test_audit_history_and_export(stack: Stack, worker) -> None:
    vm = running_vm(stack)
    emu = stack.emulator
    command(stack, vm.user, vm.channel, f"audit {vm.name}")
    history = emu.wait_for(
        lambda e: next(
            (
                r
                for r in e.responses
                if r.channel == vm.channel and r.payload.get("text", "").startswith("History of")
            ),
            None,
        )
    )
    text = json.dumps(history.payload["blocks"])
    for action in ("request.suggested", "request.approved", "vm.provisioning", "vm.running"):
        assert action in text
    assert_valid_blocks(history.payload["blocks"])

    command(stack, vm.user, vm.channel, "audit export")
    wait_answer(emu, vm.channel, "Only admins can export the audit log.")
    command(stack, "U0BOOTADMIN", vm.channel, "audit export")
    wait_answer(emu, vm.channel, "I sent you the audit log as a CSV file")
    exported = emu.wait_for(
        lambda e: next(
            (f for f in e.files if f["channel"] == "DU0BOOTADMIN" and vm.name in f["content"]), None
        )
    )
    rows = list(csv.DictReader(io.StringIO(exported["content"])))
    assert rows[0].keys() == {"at", "actor", "action", "target", "details"}
    assert any(r["action"] == "vm.running" for r in rows)


def test_admin_sets_and_lists_roles(stack: Stack) -> None:
    admin, someone, channel = "U0BOOTADMIN", unique("U"), unique("C")
    emu = stack.emulator
    command(stack, someone, channel, f"admin role <@{admin}> viewer")
    wait_answer(emu, channel, "Only admins can change roles.")
    command(stack, admin, channel, f"admin role <@{someone}|someone> approver")
    wait_answer(emu, channel, f"<@{someone}> is now approver.")
    with stack.runtime.sessions() as session:
        user = session.scalars(select(User).where(User.slack_user_id == someone)).one()
        assert user.role is Role.APPROVER
        audit = session.scalars(
            select(AuditLog).where(
                AuditLog.action == "user.role_changed", AuditLog.target == f"user:{someone}"
            )
        ).one()
        assert audit.details == {"from": "requester", "to": "approver"}
        assert audit.actor == f"slack:T0TEST/{admin}"
    command(stack, someone, channel, "admin roles")
    listing = emu.wait_for(
        lambda e: next(
            (
                r
                for r in e.responses
                if r.channel == channel and "people" in r.payload.get("text", "")
            ),
            None,
        )
    )
    texts = " ".join(b["text"]["text"] for b in listing.payload["blocks"])
    assert f"<@{someone}> · approver" in texts


def test_refine_in_thread_updates_the_card(stack: Stack) -> None:
    user, channel = unique("U"), unique("C")
    card = ask(stack, user, channel, "a django dev box for 2 hours")
    emu = stack.emulator
    reply = stack.wire.event(
        {
            "type": "message",
            "channel": channel,
            "user": user,
            "text": "make it 4 cpus",
            "ts": "1799999999.000100",
            "thread_ts": card.ts,
            "channel_type": "channel",
        }
    )
    assert stack.wire.send(reply).status == 200
    note = emu.wait_for(
        lambda e: next((t for t in thread_texts(e, card) if t.startswith("✏️ Updated")), None)
    )
    assert re.search(r"vCPUs \d → 4", note), note
    updated = emu.message(channel, card.ts)
    assert updated is not None and "4 vCPU" in json.dumps(updated.blocks)


def test_modal_inline_error_then_submit(stack: Stack) -> None:
    user, channel = unique("U"), unique("C")
    command(stack, user, channel, "")
    emu = stack.emulator
    opened = emu.wait_for(lambda e: next((v for v in e.views if v.user == user), None))
    assert opened.view["callback_id"] == ids.NEW_REQUEST_VIEW

    def submit(text: str):
        return stack.wire.send(
            stack.wire.view_submission(
                user=user,
                callback_id=ids.NEW_REQUEST_VIEW,
                metadata=channel,
                values={
                    ids.REQUEST_TEXT_BLOCK: {
                        ids.REQUEST_TEXT_INPUT: {"type": "plain_text_input", "value": text}
                    }
                },
            )
        )

    bad = submit("   ")
    assert bad.status == 200
    body = json.loads(bad.body)
    assert body["response_action"] == "errors" and ids.REQUEST_TEXT_BLOCK in body["errors"]
    assert submit("a redis box for 1 hour").status == 200
    card = emu.wait_for(lambda e: next(iter(e.messages(channel)), None))
    assert "redis" in json.dumps(card.blocks)


def test_app_home_lists_my_vms(stack: Stack, worker) -> None:
    vm = running_vm(stack)
    event = stack.wire.event(
        {"type": "app_home_opened", "user": vm.user, "tab": "home", "channel": f"D{vm.user}"}
    )
    assert stack.wire.send(event).status == 200
    home = stack.emulator.wait_for(lambda e: e.home_view(vm.user))
    assert vm.name in json.dumps(home.view)
    assert len(home.view["blocks"]) <= 100


@pytest.mark.parametrize("verb", ["stop", "start"])
def test_power_verbs_say_what_state_is_needed(stack: Stack, verb: str) -> None:
    user, channel = unique("U"), unique("C")
    command(stack, user, channel, f"{verb} no-such-vm")
    wait_answer(stack.emulator, channel, "I don't know a VM called `no-such-vm`")


def test_channel_chatter_is_not_a_request_but_dms_and_mentions_are(stack: Stack) -> None:
    emu, wire = stack.emulator, stack.wire
    user, channel = unique("U"), unique("C")

    def event(**fields: object) -> None:
        fields.setdefault("ts", f"{1800000000 + len(emu.calls)}.000100")
        assert wire.send(wire.event({"type": "message", "user": user, **fields})).status == 200

    event(channel=channel, text="anyone free for lunch?", channel_type="channel")
    # An @-mention arrives twice: as app_mention and as a channel message. One card only.
    mention = {
        "channel": channel,
        "user": user,
        "text": "<@U0VMBOT> a redis box for 1 hour",
        "ts": "1800000001.000200",
    }
    assert wire.send(wire.event({"type": "app_mention", **mention})).status == 200
    assert (
        wire.send(wire.event({"type": "message", "channel_type": "channel", **mention})).status
        == 200
    )
    # Slack retrying an event we already acked changes nothing either.
    retried = wire.event({"type": "app_mention", **mention})
    headers_retry = wire.headers(retried, content_type="application/json")
    headers_retry["X-Slack-Retry-Num"] = "1"

    request = urllib.request.Request(wire.events_url, data=retried.encode(), headers=headers_retry)
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200
    card = emu.wait_for(lambda e: next(iter(e.messages(channel)), None))
    time.sleep(0.5)
    cards = [m for m in emu.messages(channel) if not m.thread_ts]
    assert cards == [card] and "redis" in json.dumps(card.blocks)

    # A DM is a request.
    event(channel=f"D{user}", text="a flask box for 2 hours", channel_type="im")
    emu.wait_for(lambda e: next((m for m in e.messages(f"D{user}") if m.blocks), None))

    # Someone else's reply in the card's thread is conversation, not a change.
    stranger = unique("U")
    wire.send(
        wire.event(
            {
                "type": "message",
                "channel": channel,
                "user": stranger,
                "text": "make it 8 cpus",
                "ts": "1800000002.000300",
                "thread_ts": card.ts,
                "channel_type": "channel",
            }
        )
    )
    time.sleep(0.5)
    assert emu.thread(channel, card.ts) == []
    assert emu.message(channel, card.ts).updates == card.updates  # type: ignore[union-attr]
