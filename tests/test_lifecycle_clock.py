"""A VM's time to live on a clock the test controls: the reminder DM, Extend 4h, and expiry.

The test builds a second runtime, like `vmbot serve` builds one, against the session's
PostgreSQL and Slack emulator but with a `FakeClock`, and serves the real Bolt app over HTTP, so
every click is a signed Slack request and every expiry and reminder decision uses the fake time.
Its jobs go to a queue of its own that no worker reads; the test provisions synchronously.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import waitress
from sqlalchemy import select

from bot import blocks as ids
from bot.app import build_app
from bot.bootstrap import build_runtime
from bot.slack_emulator import Message, SlackEmulator
from bot.slack_wire import SlackWire
from bot.web import WebApp
from db.models import AuditLog, Vm, VmRequest, VmStatus
from provisioning.settings import Settings
from tests.conftest import SIGNING_SECRET, Stack, unique
from tests.fakes.ports import FakeClock
from tests.slackflow import answers, ask, click, thread_texts


@contextmanager
def clocked_stack(
    stack_env: dict,
    emulator: SlackEmulator,
    state_dir: Path,
    *,
    start: datetime | None = None,
    **overrides: str,
) -> Iterator[tuple[Stack, FakeClock]]:
    """The real app on a fake clock (from `start`, default the real time), over HTTP."""
    clock = FakeClock(start or datetime.now(UTC).replace(microsecond=0))
    env = {
        **stack_env,
        "VMBOT_QUEUE": f"vmbot-clock-{uuid.uuid4().hex[:8]}",  # nobody works this queue
        "VMBOT_STATE_DIR": str(state_dir),  # a local cloud of its own
        "VMBOT_LOCAL_STEP_SECONDS": "0",
        **overrides,
    }
    settings = Settings(_env_file=None, **{k.lower(): v for k, v in env.items()})
    runtime = build_runtime(settings, clock=clock)
    app = build_app(settings, runtime.services(), runtime.client)
    web = WebApp(app, {"database": runtime.check_database, "broker": runtime.check_broker})
    server = waitress.create_server(web, host="127.0.0.1", port=0, threads=8)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.effective_port}"
    wire = SlackWire(SIGNING_SECRET, f"{url}/slack/events", team_id="T0TEST")
    try:
        yield Stack(runtime=runtime, wire=wire, emulator=emulator, url=url, web=web), clock
    finally:
        server.close()
        runtime.close()


MONTH_AGO = datetime.now(UTC).replace(microsecond=0) - timedelta(days=30)


def vm_of(stack: Stack, card: Message) -> Vm:
    with stack.runtime.sessions() as session:
        return session.scalars(
            select(Vm)
            .join(VmRequest, Vm.request_id == VmRequest.id)
            .where(VmRequest.message_ts == card.ts)
        ).one()


def press(stack: Stack, user: str, message: Message, label: str) -> None:
    """Click the button labelled `label` (the Extend buttons share one action id)."""
    button = next(
        element
        for block in message.blocks
        if block["type"] == "actions"
        for element in block["elements"]
        if element["text"]["text"] == label
    )
    reply = stack.wire.send(
        stack.wire.block_action(
            user=user,
            channel=message.channel,
            message_ts=message.ts,
            action_id=button["action_id"],
            value=button["value"],
            response_url=stack.emulator.make_response_url(
                channel=message.channel, user=user, message_ts=message.ts
            ),
        )
    )
    assert reply.status == 200, reply.body


def test_reminder_extend_and_expiry_on_a_fake_clock(stack_env, emulator, tmp_path) -> None:
    # A month in the past: the database is shared, and expire_due and send_due look at every
    # VM, so this clock must never make another test's VM due.
    with clocked_stack(stack_env, emulator, tmp_path, start=MONTH_AGO) as (
        stack,
        clock,
    ):
        runtime, emu = stack.runtime, stack.emulator
        user, channel = unique("U"), unique("C")
        card = ask(stack, user, channel, "a small flask box for 2 hours")
        assert click(stack, user, card, ids.APPROVE).status == 200
        emu.wait_for(lambda e: f"⏳ Queued — approved by <@{user}>" in thread_texts(e, card))

        runtime.provisioner().provision(vm_of(stack, card).id)
        vm = vm_of(stack, card)
        assert vm.status is VmStatus.RUNNING
        assert vm.running_at == clock.now() and vm.expires_at == clock.now() + timedelta(hours=2)
        assert any(t.startswith("✅ Running") for t in thread_texts(emu, card))
        reminders = runtime.reminders()

        # Not yet due 40 minutes before the end (the window is 30 minutes).
        clock.current = vm.expires_at - timedelta(minutes=40)
        assert reminders.send_due() == []

        clock.current = vm.expires_at - timedelta(minutes=20)
        assert reminders.send_due() == [vm.request_id]
        dm = emu.wait_for(lambda e: next(iter(e.messages(f"D{user}")), None))
        labels = [
            element["text"]["text"]
            for block in dm.blocks
            if block["type"] == "actions"
            for element in block["elements"]
        ]
        assert labels == ["Extend 1h", "Extend 4h", "Extend 1 day", "Destroy now"]
        assert vm.name in dm.blocks[0]["text"]["text"]
        emu.wait_for(
            lambda e: any(
                t.startswith("⏰ Expires") and f"I've sent <@{user}> a reminder" in t
                for t in thread_texts(e, card)
            )
        )

        # Due twice, told once: the beat may run again before anyone reacts.
        thread_before = thread_texts(emu, card)
        assert reminders.send_due() == []
        assert len(emu.messages(f"D{user}")) == 1
        assert thread_texts(emu, card) == thread_before

        # Extend 4h from the DM: a signed click, and the owner is read from the signed body.
        press(stack, user, dm, "Extend 4h")
        emu.wait_for(
            lambda e: any(
                t.startswith(f"⏳ `{vm.name}` now expires") for t in answers(e, dm.channel)
            )
        )
        extended = vm_of(stack, card)
        assert extended.expires_at == vm.expires_at + timedelta(hours=4)
        emu.wait_for(
            lambda e: any(t.startswith("⏳ Extended by 4 h") for t in thread_texts(e, card))
        )

        # The new expiry is due for a reminder of its own, once.
        assert extended.expires_at is not None
        clock.current = extended.expires_at - timedelta(minutes=10)
        assert reminders.send_due() == [vm.request_id]
        assert reminders.send_due() == []
        with runtime.sessions() as session:
            reminded = session.scalars(
                select(AuditLog.details).where(
                    AuditLog.action == "vm.reminded", AuditLog.target == f"vm:{vm.id}"
                )
            ).all()
        assert [d["expires_at"] for d in reminded] == [
            vm.expires_at.isoformat(),
            extended.expires_at.isoformat(),
        ]

        # Not a second early...
        clock.current = extended.expires_at - timedelta(seconds=1)
        assert vm.id not in runtime.provisioner().expire_due()
        assert vm_of(stack, card).status is VmStatus.RUNNING

        # ...and destroyed once its time is up.
        clock.current = extended.expires_at + timedelta(minutes=1)
        assert vm.id in runtime.provisioner().expire_due()
        gone = vm_of(stack, card)
        assert gone.status is VmStatus.DESTROYED and gone.deleted_at == clock.now()
        texts = emu.wait_for(
            lambda e: (
                (t := thread_texts(e, card)) and "🗑️ Destroyed. Thanks for cleaning up!" in t and t
            )
        )
        assert any(t.startswith("🗑️ Destroying") and "Expired" in t for t in texts)
        assert vm.name not in [i.name for i in runtime.backend.list_managed()]
        assert vm.id not in runtime.provisioner().expire_due()
