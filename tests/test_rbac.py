"""Role-based access, table-driven: every (role × action) pair through signed Slack requests.

Each row names a role, an action and what must happen: "allowed", or "denied: <the exact
sentence the person is told>". A denied row also checks that nothing changed: the request's
status and approver, the VM's status and expiry, the person's role and SSH key, and the number of
audit rows about the target.

What "own" means for a viewer: viewers cannot ask for VMs, so a viewer's own request or VM is
one they made while they were a requester and were then demoted. A demoted owner keeps no rights
over it (`VmService._mine_or`), and policy denies their request at approval.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import func, select

from bot import blocks as ids
from bot.slack_emulator import Message, SlackEmulator
from db.models import AuditLog, RequestStatus, Role, User, Vm, VmRequest, VmStatus
from provisioning.jobs import CeleryJobQueue
from provisioning.sshkeys import parse_public_key
from tests.conftest import Stack, unique
from tests.slackflow import answers, ask, buttons, click, command, thread_texts

ADMIN = "U0BOOTADMIN"
SMALL = "a small flask box for 2 hours"  # auto-approved: cheap, no GPU
GPU = "a GPU box with one T4 for 2 hours"  # always needs an approver

ALLOWED = "allowed"
NOT_OWNER_DESTROY = "denied: Only its owner or an admin can destroy `{vm}`."
NOT_OWNER_EXTEND = "denied: Only its owner or an admin can extend `{vm}`."
NOT_OWNER_AUDIT = "denied: Only its owner or an approver can see the history of `{vm}`."
NOT_ADMIN_ROLES = "denied: Only admins can change roles."
NOT_APPROVER_REJECT = "denied: Only approvers can reject requests."

# fmt: off
TABLE: list[tuple[str, str, str]] = [
    # role         action           expected outcome
    ("viewer",    "request",       "denied: Viewers cannot request VMs. Ask an admin for the requester role."),  # noqa: E501
    ("requester", "request",       ALLOWED),
    ("approver",  "request",       ALLOWED),
    ("admin",     "request",       ALLOWED),
    # approve own: a cheap request that needs no approver, pressed by the person who asked
    ("viewer",    "approve_own",   "denied: This request is denied by policy: viewers cannot request VMs; ask an admin for the requester role."),  # noqa: E501
    ("requester", "approve_own",   ALLOWED),
    ("approver",  "approve_own",   ALLOWED),
    ("admin",     "approve_own",   ALLOWED),
    # approve other's: someone else's GPU request, pending approval
    ("viewer",    "approve_other", "denied: Viewers cannot approve VMs. Ask an admin for the requester role."),  # noqa: E501
    ("requester", "approve_other", "denied: Only approvers can approve this request."),
    ("approver",  "approve_other", ALLOWED),
    ("admin",     "approve_other", ALLOWED),
    # reject: someone else's GPU request, pending approval; the Reject button, then the modal
    ("viewer",    "reject",        NOT_APPROVER_REJECT),
    ("requester", "reject",        NOT_APPROVER_REJECT),
    ("approver",  "reject",        ALLOWED),
    ("admin",     "reject",        ALLOWED),
    # destroy own: /vm destroy NAME, then the confirmation button
    ("viewer",    "destroy_own",   NOT_OWNER_DESTROY),
    ("requester", "destroy_own",   ALLOWED),
    ("approver",  "destroy_own",   ALLOWED),
    ("admin",     "destroy_own",   ALLOWED),
    ("viewer",    "destroy_other", NOT_OWNER_DESTROY),
    ("requester", "destroy_other", NOT_OWNER_DESTROY),
    ("approver",  "destroy_other", NOT_OWNER_DESTROY),
    ("admin",     "destroy_other", ALLOWED),
    # extend: /vm extend NAME 1h
    ("viewer",    "extend_own",    NOT_OWNER_EXTEND),
    ("requester", "extend_own",    ALLOWED),
    ("approver",  "extend_own",    ALLOWED),
    ("admin",     "extend_own",    ALLOWED),
    ("viewer",    "extend_other",  NOT_OWNER_EXTEND),
    ("requester", "extend_other",  NOT_OWNER_EXTEND),
    ("approver",  "extend_other",  NOT_OWNER_EXTEND),
    ("admin",     "extend_other",  ALLOWED),
    # change roles: /vm admin role @someone approver
    ("viewer",    "change_role",   NOT_ADMIN_ROLES),
    ("requester", "change_role",   NOT_ADMIN_ROLES),
    ("approver",  "change_role",   NOT_ADMIN_ROLES),
    ("admin",     "change_role",   ALLOWED),
    # register key: /vm key, then the modal's submission with a fresh ed25519 public key
    ("viewer",    "register_key",  "denied: Viewers cannot register SSH keys; ask an admin for a role."),  # noqa: E501
    ("requester", "register_key",  ALLOWED),
    ("approver",  "register_key",  ALLOWED),
    ("admin",     "register_key",  ALLOWED),
    # view audit: /vm audit NAME
    ("viewer",    "audit_own",     NOT_OWNER_AUDIT),
    ("requester", "audit_own",     ALLOWED),
    ("approver",  "audit_own",     ALLOWED),
    ("admin",     "audit_own",     ALLOWED),
    ("viewer",    "audit_other",   NOT_OWNER_AUDIT),
    ("requester", "audit_other",   NOT_OWNER_AUDIT),
    ("approver",  "audit_other",   ALLOWED),
    ("admin",     "audit_other",   ALLOWED),
]
# fmt: on
ROLES = ("viewer", "requester", "approver", "admin")


def test_the_table_covers_every_pair() -> None:
    pairs = [(role, action) for role, action, _ in TABLE]
    assert len(pairs) == len(set(pairs))
    actions = dict.fromkeys(action for _, action, _ in TABLE)
    assert set(pairs) == {(role, action) for role in ROLES for action in actions}
    assert set(actions) == set(ACTIONS)


# -- the world: people with roles and running VMs, made once per module -----------------------


@dataclass
class Owned:
    user: str
    channel: str
    card: Message
    name: str


@dataclass
class World:
    stack: Stack
    users: list[str] = field(default_factory=list)
    keep: dict[str, Owned] = field(default_factory=dict)  # per role: extended and audited
    destroy_own: dict[str, Owned] = field(default_factory=dict)  # per role: destroyed
    other: Owned | None = None  # a requester's VM that others try to touch
    other_for_admin: Owned | None = None  # the one the admin destroys

    @property
    def emu(self) -> SlackEmulator:
        return self.stack.emulator

    def set_role(self, user: str, role: str) -> None:
        channel = unique("C")
        command(self.stack, ADMIN, channel, f"admin role <@{user}> {role}")
        wait_exact(self.emu, channel, f"<@{user}> is now {role}.")

    def person(self, role: str) -> str:
        user = unique("U")
        self.users.append(user)
        self.set_role(user, role)
        return user

    def running_vm(self, role: str) -> Owned:
        """A running VM owned by a new person with `role` (a viewer: demoted once it runs)."""
        user = self.person("requester" if role == "viewer" else role)
        channel = unique("C")
        card = ask(self.stack, user, channel, SMALL)
        click(self.stack, user, card, ids.APPROVE)
        self.emu.wait_for(
            lambda e: any(t.startswith("✅ Running") for t in thread_texts(e, card)), timeout=30
        )
        if role == "viewer":
            self.set_role(user, "viewer")
        return Owned(user, channel, card, card.blocks[0]["text"]["text"].split("*")[1])

    def pending_gpu_request(self) -> tuple[Message, int]:
        """Someone else's GPU request, sent to the admins: (its card, its request id)."""
        requester, channel = self.person("requester"), unique("C")
        card = ask(self.stack, requester, channel, GPU)
        click(self.stack, requester, card, ids.REQUEST_APPROVAL)
        pending = self.emu.wait_for(
            lambda e: (
                m
                if (m := e.message(channel, card.ts)) and ids.ADMIN_APPROVE in buttons(m)
                else None
            )
        )
        return pending, int(buttons(pending)[ids.ADMIN_APPROVE]["value"])


@pytest.fixture(scope="module")
def world(stack: Stack, worker) -> Iterator[World]:
    w = World(stack)
    jobs = [(w.keep, role) for role in ROLES]
    jobs += [(w.destroy_own, role) for role in ("requester", "approver", "admin")]
    with ThreadPoolExecutor(max_workers=len(jobs) + 2) as pool:
        made = {pool.submit(w.running_vm, role): (into, role) for into, role in jobs}
        other = pool.submit(w.running_vm, "requester")
        other_for_admin = pool.submit(w.running_vm, "requester")
        for future, (into, role) in made.items():
            into[role] = future.result()
        w.other, w.other_for_admin = other.result(), other_for_admin.result()
    yield w
    clean_up(stack, w.users)


def clean_up(stack: Stack, users: list[str]) -> None:
    """Destroy what this module made, so later tests find the regions as they were."""

    def vms() -> list[tuple[int, VmStatus]]:
        with stack.runtime.sessions() as session:
            return list(
                session.execute(
                    select(Vm.id, Vm.status)
                    .join(VmRequest, Vm.request_id == VmRequest.id)
                    .join(User, VmRequest.requester_id == User.id)
                    .where(User.slack_user_id.in_(users))
                ).all()
            )

    busy = {VmStatus.QUEUED, VmStatus.PROVISIONING, VmStatus.DESTROYING, VmStatus.STOPPING}
    poll(lambda: all(status not in busy for _, status in vms()), timeout=30, fail=False)
    queue = CeleryJobQueue(stack.runtime.celery)
    for vm_id, status in vms():
        if status in (VmStatus.RUNNING, VmStatus.STOPPED):
            queue.enqueue_destroy(vm_id)
    poll(
        lambda: all(s in (VmStatus.DESTROYED, VmStatus.FAILED) for _, s in vms()),
        timeout=30,
        fail=False,
    )


# -- reading what happened --------------------------------------------------------------------


def poll(check: Callable[[], object], *, timeout: float = 10, fail: bool = True) -> object:
    """Wait for a database condition (the emulator's wait_for only wakes on Slack traffic)."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            if fail:
                raise AssertionError(f"timed out after {timeout}s waiting for {check}")
            return None
        time.sleep(0.05)


def wait_exact(emu: SlackEmulator, channel: str, sentence: str) -> str:
    return emu.wait_for(lambda e: sentence in answers(e, channel) and sentence)


def dm_texts(emu: SlackEmulator, user: str) -> list[str]:
    return [m.text for m in emu.messages(f"D{user}")]


def audit_count(stack: Stack, target: str) -> int:
    with stack.runtime.sessions() as session:
        return session.scalar(select(func.count(AuditLog.id)).where(AuditLog.target == target))


def request_state(stack: Stack, request_id: int) -> tuple:
    with stack.runtime.sessions() as session:
        req = session.get(VmRequest, request_id)
        assert req is not None
        state = (req.status, req.approver_id, req.decided_at, len(req.vms))
    return (*state, audit_count(stack, f"request:{request_id}"))


def vm_row(stack: Stack, name: str) -> Vm:
    with stack.runtime.sessions() as session:
        return session.scalars(select(Vm).where(Vm.name == name)).one()


def vm_state(stack: Stack, name: str) -> tuple[VmStatus, datetime | None, int]:
    vm = vm_row(stack, name)
    return vm.status, vm.expires_at, audit_count(stack, f"vm:{vm.id}")


def user_state(stack: Stack, user: str) -> tuple:
    with stack.runtime.sessions() as session:
        row = session.scalars(select(User).where(User.slack_user_id == user)).one_or_none()
        state = (row.role, row.ssh_public_key) if row else (None, None)
    return (*state, audit_count(stack, f"user:{user}"))


def request_id_of_ts(stack: Stack, ts: str) -> int | None:
    with stack.runtime.sessions() as session:
        return session.scalar(select(VmRequest.id).where(VmRequest.message_ts == ts))


def request_id_of(stack: Stack, card: Message) -> int:
    with stack.runtime.sessions() as session:
        request_id = session.scalar(select(VmRequest.id).where(VmRequest.message_ts == card.ts))
    assert request_id is not None
    return request_id


# -- the actions ------------------------------------------------------------------------------


@dataclass
class Attempt:
    """One signed attempt at an action, with what it would change and how to read the outcome."""

    state: Callable[[], object]  # a snapshot of everything the action could change
    act: Callable[[], object]  # send the signed request(s) Slack would send
    denied: Callable[[str], None]  # wait until the person is told exactly this sentence
    allowed: Callable[[], None]  # wait until the action has visibly taken effect
    vm: str = ""  # the VM's name, for sentences that quote it


def answered_in(emu: SlackEmulator, channel: str) -> Callable[[str], None]:
    def denied(sentence: str) -> None:
        wait_exact(emu, channel, sentence)

    return denied


def request(w: World, role: str) -> Attempt:
    user, channel = w.person(role), unique("C")

    def state() -> tuple:
        with w.stack.runtime.sessions() as session:
            count = session.scalar(
                select(func.count(VmRequest.id))
                .join(User, VmRequest.requester_id == User.id)
                .where(User.slack_user_id == user)
            )
        return count, [m.ts for m in w.emu.messages(channel) if not m.ephemeral_user]

    def allowed() -> None:
        card = w.emu.wait_for(
            lambda e: next((m for m in e.messages(channel) if not m.ephemeral_user), None)
        )
        assert f"suggested for <@{user}>" in card.blocks[0]["text"]["text"]
        assert poll(lambda: request_id_of_ts(w.stack, card.ts))
        assert state()[0] == 1

    return Attempt(
        state,
        act=lambda: command(w.stack, user, channel, SMALL),
        denied=answered_in(w.emu, channel),
        allowed=allowed,
    )


def approve_own(w: World, role: str) -> Attempt:
    user, channel = w.person("requester" if role == "viewer" else role), unique("C")
    card = ask(w.stack, user, channel, SMALL)
    assert ids.APPROVE in buttons(card)
    if role == "viewer":
        w.set_role(user, "viewer")  # demoted after asking
    request_id = request_id_of(w.stack, card)

    def allowed() -> None:
        w.emu.wait_for(lambda e: f"⏳ Queued — approved by <@{user}>" in thread_texts(e, card))
        status, approver_id, *_ = request_state(w.stack, request_id)
        assert status is RequestStatus.APPROVED and approver_id is not None

    return Attempt(
        lambda: request_state(w.stack, request_id),
        act=lambda: click(w.stack, user, card, ids.APPROVE),
        denied=answered_in(w.emu, channel),
        allowed=allowed,
    )


def approve_other(w: World, role: str) -> Attempt:
    card, request_id = w.pending_gpu_request()
    actor = w.person(role)

    def allowed() -> None:
        w.emu.wait_for(lambda e: f"⏳ Queued — approved by <@{actor}>" in thread_texts(e, card))
        assert request_state(w.stack, request_id)[0] is RequestStatus.APPROVED

    return Attempt(
        lambda: request_state(w.stack, request_id),
        act=lambda: click(w.stack, actor, card, ids.ADMIN_APPROVE),
        denied=answered_in(w.emu, card.channel),
        allowed=allowed,
    )


def reject(w: World, role: str) -> Attempt:
    card, request_id = w.pending_gpu_request()
    actor = w.person(role)
    reason = "no GPUs this week"

    def act() -> None:
        # The button first: an approver gets the reason form, anyone else a refusal.
        w.stack.wire.send(
            w.stack.wire.block_action(
                user=actor,
                channel=card.channel,
                message_ts=card.ts,
                action_id=ids.ADMIN_REJECT,
                value=str(request_id),
                response_url=w.emu.make_response_url(
                    channel=card.channel, user=actor, message_ts=card.ts
                ),
                trigger_id=w.emu.make_trigger_id(actor),
            )
        )
        if role in ("viewer", "requester"):
            wait_exact(w.emu, card.channel, NOT_APPROVER_REJECT.removeprefix("denied: "))
        else:
            w.emu.wait_for(
                lambda e: any(
                    v.user == actor and v.view.get("callback_id") == ids.REJECT_VIEW
                    for v in e.views
                )
            )
        # Then the form's submission, as Slack sends it (or as someone would forge it).
        submission = w.stack.wire.view_submission(
            user=actor,
            callback_id=ids.REJECT_VIEW,
            metadata=str(request_id),
            values={
                ids.REASON_BLOCK: {ids.REASON_INPUT: {"type": "plain_text_input", "value": reason}}
            },  # noqa: E501
        )
        assert w.stack.wire.send(submission).status == 200

    def denied(sentence: str) -> None:  # a view submission has no response URL: told by DM
        w.emu.wait_for(lambda e: sentence in dm_texts(e, actor))

    def allowed() -> None:
        w.emu.wait_for(lambda e: f"🚫 Rejected by <@{actor}>: {reason}" in thread_texts(e, card))
        assert request_state(w.stack, request_id)[0] is RequestStatus.REJECTED

    return Attempt(lambda: request_state(w.stack, request_id), act, denied, allowed)


def destroy(w: World, actor: str, target: Owned) -> Attempt:
    channel = unique("C")

    def act() -> None:
        command(w.stack, actor, channel, f"destroy {target.name}")

    def denied(sentence: str) -> None:
        wait_exact(w.emu, channel, sentence)
        # A forged confirmation click is refused the same way.
        w.stack.wire.send(
            w.stack.wire.block_action(
                user=actor,
                channel=channel,
                message_ts="1.000001",
                action_id=ids.VM_DESTROY_CONFIRM,
                value=target.name,
                response_url=w.emu.make_response_url(channel=channel, user=actor),
            )
        )
        w.emu.wait_for(lambda e: answers(e, channel).count(sentence) == 2)

    def allowed() -> None:
        confirm = w.emu.wait_for(
            lambda e: next(
                (
                    m
                    for m in e.messages(channel)
                    if m.ephemeral_user and ids.VM_DESTROY_CONFIRM in json.dumps(m.blocks)
                ),
                None,
            )
        )
        assert vm_row(w.stack, target.name).status is VmStatus.RUNNING  # not before confirming
        click(w.stack, actor, confirm, ids.VM_DESTROY_CONFIRM)
        w.emu.wait_for(
            lambda e: "🗑️ Destroyed. Thanks for cleaning up!" in thread_texts(e, target.card),
            timeout=20,
        )
        assert vm_row(w.stack, target.name).status is VmStatus.DESTROYED

    return Attempt(lambda: vm_state(w.stack, target.name), act, denied, allowed, target.name)


def destroy_own(w: World, role: str) -> Attempt:
    owned = w.keep["viewer"] if role == "viewer" else w.destroy_own[role]
    return destroy(w, owned.user, owned)


def destroy_other(w: World, role: str) -> Attempt:
    target = w.other_for_admin if role == "admin" else w.other
    assert target is not None
    return destroy(w, w.person(role), target)


def extend(w: World, actor: str, target: Owned) -> Attempt:
    channel = unique("C")
    before = vm_row(w.stack, target.name).expires_at

    def allowed() -> None:
        w.emu.wait_for(
            lambda e: any(
                t.startswith(f"⏳ `{target.name}` now expires") for t in answers(e, channel)
            )
        )
        after = vm_row(w.stack, target.name).expires_at
        assert before is not None and after is not None
        assert round((after - before).total_seconds()) == 3600

    return Attempt(
        lambda: vm_state(w.stack, target.name),
        act=lambda: command(w.stack, actor, channel, f"extend {target.name} 1h"),
        denied=answered_in(w.emu, channel),
        allowed=allowed,
        vm=target.name,
    )


def extend_own(w: World, role: str) -> Attempt:
    return extend(w, w.keep[role].user, w.keep[role])


def extend_other(w: World, role: str) -> Attempt:
    assert w.other is not None
    return extend(w, w.person(role), w.other)


def change_role(w: World, role: str) -> Attempt:
    actor, target, channel = w.person(role), w.person("requester"), unique("C")

    def allowed() -> None:
        wait_exact(w.emu, channel, f"<@{target}> is now approver.")
        assert user_state(w.stack, target)[0] is Role.APPROVER
        with w.stack.runtime.sessions() as session:
            row = session.scalars(
                select(AuditLog)
                .where(AuditLog.target == f"user:{target}")
                .order_by(AuditLog.id.desc())
            ).first()
        assert row is not None and row.actor == f"slack:T0TEST/{actor}"
        assert row.details == {"from": "requester", "to": "approver"}

    return Attempt(
        lambda: user_state(w.stack, target),
        act=lambda: command(w.stack, actor, channel, f"admin role <@{target}> approver"),
        denied=answered_in(w.emu, channel),
        allowed=allowed,
    )


def register_key(w: World, role: str) -> Attempt:
    actor, channel = w.person(role), unique("C")
    line = (
        Ed25519PrivateKey.generate()
        .public_key()
        .public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
        .decode()
        + f" {actor.lower()}@laptop"
    )
    key = parse_public_key(line)

    def act() -> None:
        command(w.stack, actor, channel, "key")
        w.emu.wait_for(
            lambda e: any(
                v.user == actor and v.view.get("callback_id") == ids.KEY_VIEW for v in e.views
            )
        )
        submission = w.stack.wire.view_submission(
            user=actor,
            callback_id=ids.KEY_VIEW,
            values={ids.KEY_BLOCK: {ids.KEY_INPUT: {"type": "plain_text_input", "value": line}}},
        )
        reply = w.stack.wire.send(submission)
        assert reply.status == 200 and "errors" not in reply.body, reply.body

    def denied(sentence: str) -> None:
        w.emu.wait_for(lambda e: sentence in dm_texts(e, actor))

    def allowed() -> None:
        told = (
            f"🔑 Registered your ssh-ed25519 key {key.fingerprint_sha256}. "
            "New VMs will let you in with it."
        )
        w.emu.wait_for(lambda e: told in dm_texts(e, actor))
        assert user_state(w.stack, actor)[1] == key.normalized_line

    return Attempt(lambda: user_state(w.stack, actor), act, denied, allowed)


def audit(w: World, actor: str, target: Owned) -> Attempt:
    channel = unique("C")

    def allowed() -> None:
        history = w.emu.wait_for(
            lambda e: next(
                (
                    r
                    for r in e.responses
                    if r.channel == channel and r.payload.get("text") == f"History of {target.name}"
                ),
                None,
            )
        )
        assert "request.approved" in json.dumps(history.payload["blocks"])

    return Attempt(
        lambda: vm_state(w.stack, target.name),
        act=lambda: command(w.stack, actor, channel, f"audit {target.name}"),
        denied=answered_in(w.emu, channel),
        allowed=allowed,
        vm=target.name,
    )


def audit_own(w: World, role: str) -> Attempt:
    return audit(w, w.keep[role].user, w.keep[role])


def audit_other(w: World, role: str) -> Attempt:
    assert w.other is not None
    return audit(w, w.person(role), w.other)


ACTIONS: dict[str, Callable[[World, str], Attempt]] = {
    "request": request,
    "approve_own": approve_own,
    "approve_other": approve_other,
    "reject": reject,
    "destroy_own": destroy_own,
    "destroy_other": destroy_other,
    "extend_own": extend_own,
    "extend_other": extend_other,
    "change_role": change_role,
    "register_key": register_key,
    "audit_own": audit_own,
    "audit_other": audit_other,
}


@pytest.mark.parametrize(
    ("role", "action", "expected"), TABLE, ids=[f"{r}-{a}" for r, a, _ in TABLE]
)
def test_rbac(world: World, role: str, action: str, expected: str) -> None:
    attempt = ACTIONS[action](world, role)
    before = attempt.state()
    attempt.act()
    if expected == ALLOWED:
        attempt.allowed()
        return
    sentence = expected.removeprefix("denied: ").format(vm=attempt.vm)
    attempt.denied(sentence)
    assert attempt.state() == before, "a refused action changed something"
