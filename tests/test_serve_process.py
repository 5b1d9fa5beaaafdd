"""`vmbot serve` and `vmbot worker` as real processes, against PostgreSQL and Redis, handle a
request from signed Slack HTTP calls to a running VM."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator

import pytest

from bot import blocks as ids
from bot.slack_emulator import SlackEmulator
from bot.slack_wire import SlackWire
from tests.conftest import ROOT, SIGNING_SECRET, unique


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def served(stack_env: dict, tmp_path_factory) -> Iterator[str]:
    port = free_port()
    log_path = tmp_path_factory.mktemp("serve") / "serve.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "bot.cli", "serve", "--port", str(port), "--host", "127.0.0.1"],
            env={**os.environ, **stack_env},
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            with urllib.request.urlopen(url + "/healthz", timeout=2) as response:
                if response.status == 200:
                    break
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail("vmbot serve did not come up:\n" + log_path.read_text()[-4000:])
        time.sleep(0.2)
    yield url
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
    assert SIGNING_SECRET not in log_path.read_text(), "a secret reached the log"


def test_serve_and_worker_processes_take_a_request_to_running(
    served: str, worker, emulator: SlackEmulator
) -> None:
    wire = SlackWire(SIGNING_SECRET, served + "/slack/events", team_id="T0TEST")
    user, channel = unique("U"), unique("C")
    reply = wire.send(
        wire.slash_command(
            user=user,
            channel=channel,
            text="a flask app with redis for 1 hour",
            response_url=emulator.make_response_url(channel=channel, user=user),
        )
    )
    assert reply.status == 200
    card = emulator.wait_for(lambda e: next(iter(e.messages(channel)), None))
    approve = next(
        el
        for b in card.blocks
        if b["type"] == "actions"
        for el in b["elements"]
        if el["action_id"] == ids.APPROVE
    )
    assert (
        wire.send(
            wire.block_action(
                user=user,
                channel=channel,
                message_ts=card.ts,
                action_id=ids.APPROVE,
                value=approve["value"],
                response_url=emulator.make_response_url(channel=channel),
            )
        ).status
        == 200
    )
    running = emulator.wait_for(
        lambda e: next((m.text for m in e.thread(channel, card.ts) if "Running" in m.text), None),
        timeout=30,
    )
    assert "203.0.113." in running
    assert (
        wire.send(
            wire.slash_command(user=user, channel=channel, text="x", response_url=""),
            signature="v0=bad",
        ).status
        == 401
    )
