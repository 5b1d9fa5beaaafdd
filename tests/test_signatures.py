"""Slack signature verification: forged or stale requests get 401 and change nothing."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import select

from db.models import AuditLog, User, VmRequest
from tests.conftest import Stack, unique


def traces(stack: Stack, user: str, channel: str) -> list[object]:
    """Everything the app could have done for this user and channel: rows and Slack calls.

    Scoped to the test's own ids, since other tests' jobs may still be running."""
    with stack.runtime.sessions() as session:
        rows: list[object] = list(
            session.scalars(
                select(VmRequest.id)
                .join(User, User.id == VmRequest.requester_id)
                .where(User.slack_user_id == user)
            )
        )
        rows += list(session.scalars(select(User.id).where(User.slack_user_id == user)))
        rows += list(session.scalars(select(AuditLog.id).where(AuditLog.actor.contains(user))))
    calls = [c for c in stack.emulator.calls if channel in str(c.params) or user in str(c.params)]
    posts = [r for r in stack.emulator.responses if r.channel == channel or r.user == user]
    return rows + calls + posts


@pytest.mark.parametrize(
    "tamper",
    [
        pytest.param({"signature": "v0=" + "0" * 64}, id="forged-signature"),
        pytest.param({"signature": ""}, id="missing-signature"),
        pytest.param({"age": 6 * 60}, id="stale-6-minutes"),
        pytest.param({"age": -6 * 60}, id="from-the-future"),
    ],
)
def test_bad_signatures_are_refused(stack: Stack, tamper: dict) -> None:
    user, channel = unique("U"), unique("C")
    body = stack.wire.slash_command(
        user=user,
        channel=channel,
        text="2 cpus for 1 hour",
        response_url=stack.emulator.make_response_url(channel=channel, user=user),
    )
    # Timestamps are taken now, not when the tests were collected.
    if "age" in tamper:
        tamper = {"timestamp": int(time.time()) - tamper["age"]}
    reply = stack.wire.send(body, **tamper)
    assert reply.status == 401
    time.sleep(0.3)  # anything the app might wrongly do runs after the response
    assert traces(stack, user, channel) == []


def test_signature_over_a_different_body_is_refused(stack: Stack) -> None:
    user, channel = unique("U"), unique("C")
    wire = stack.wire
    signed = wire.slash_command(user=user, channel=channel, text="tiny", response_url="")
    sent = wire.slash_command(user=user, channel=channel, text="500 H100s", response_url="")
    ts = int(time.time())
    signature = wire.headers(signed, content_type="x", timestamp=ts)["X-Slack-Signature"]
    assert wire.send(sent, timestamp=ts, signature=signature).status == 401
    time.sleep(0.3)
    assert traces(stack, user, channel) == []


def test_a_fresh_signature_is_accepted(stack: Stack) -> None:
    user, channel = unique("U"), unique("C")
    reply = stack.wire.send(
        stack.wire.slash_command(
            user=user,
            channel=channel,
            text="help",
            response_url=stack.emulator.make_response_url(channel=channel, user=user),
        ),
        timestamp=int(time.time()) - 60,
    )
    assert reply.status == 200
    stack.emulator.wait_for(
        lambda e: any(
            "Ask for a VM" in r.payload.get("text", "") for r in e.responses if r.channel == channel
        )
    )
