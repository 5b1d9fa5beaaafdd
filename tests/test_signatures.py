"""Slack signature verification: forged or stale requests get 401 and change nothing."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import func, select

from db.models import AuditLog, VmRequest
from tests.conftest import Stack, unique


def counts(stack: Stack) -> tuple[int, int, int]:
    with stack.runtime.sessions() as session:
        return (
            session.scalar(select(func.count(VmRequest.id))) or 0,
            session.scalar(select(func.count(AuditLog.id))) or 0,
            len(stack.emulator.calls),
        )


@pytest.mark.parametrize(
    "tamper",
    [
        pytest.param({"signature": "v0=" + "0" * 64}, id="forged-signature"),
        pytest.param({"signature": ""}, id="missing-signature"),
        pytest.param({"timestamp": int(time.time()) - 6 * 60}, id="stale-6-minutes"),
        pytest.param({"timestamp": int(time.time()) + 6 * 60}, id="from-the-future"),
    ],
)
def test_bad_signatures_are_refused(stack: Stack, tamper: dict) -> None:
    before = counts(stack)
    body = stack.wire.slash_command(
        user=unique("U"),
        channel=unique("C"),
        text="2 cpus for 1 hour",
        response_url=stack.emulator.make_response_url(),
    )
    reply = stack.wire.send(body, **tamper)
    assert reply.status == 401
    time.sleep(0.3)  # anything the app might wrongly do runs after the response
    assert counts(stack) == before


def test_signature_over_a_different_body_is_refused(stack: Stack) -> None:
    before = counts(stack)
    wire = stack.wire
    signed = wire.slash_command(user="U1", channel="C1", text="tiny", response_url="")
    sent = wire.slash_command(user="U1", channel="C1", text="500 H100s", response_url="")
    ts = int(time.time())
    signature = wire.headers(signed, content_type="x", timestamp=ts)["X-Slack-Signature"]
    assert wire.send(sent, timestamp=ts, signature=signature).status == 401
    assert counts(stack) == before


def test_a_fresh_signature_is_accepted(stack: Stack) -> None:
    reply = stack.wire.send(
        stack.wire.slash_command(
            user=unique("U"),
            channel=unique("C"),
            text="help",
            response_url=stack.emulator.make_response_url(),
        ),
        timestamp=int(time.time()) - 60,
    )
    assert reply.status == 200
