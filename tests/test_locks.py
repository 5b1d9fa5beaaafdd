"""The per-VM locks: exclusive while held, free afterwards, and let go when the holder dies.
The same contract for Redis (production), flock (embedded) and the in-memory fake."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from provisioning.locks import FileLocks, LockHeld, Locks, RedisLocks
from tests.conftest import ROOT, unique
from tests.fakes.ports import FakeLocks


@pytest.fixture(params=["redis", "file", "fake"])
def locks(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Locks]:
    if request.param == "redis":
        yield RedisLocks(request.getfixturevalue("redis_url"), ttl=1.0)
    elif request.param == "file":
        yield FileLocks(tmp_path)
    else:
        yield FakeLocks()


def test_held_means_exclusive_and_released_after(locks: Locks) -> None:
    key = unique("vm-")
    assert not locks.is_held(key)
    with locks.hold(key):
        assert locks.is_held(key)
        with pytest.raises(LockHeld), locks.hold(key):
            pass
        with locks.hold(key + "-other"):
            pass
    assert not locks.is_held(key)
    with locks.hold(key):
        pass


def test_released_when_the_block_raises(locks: Locks) -> None:
    key = unique("vm-")
    with pytest.raises(RuntimeError), locks.hold(key):
        raise RuntimeError("the job failed")
    assert not locks.is_held(key)


def test_redis_lock_outlives_its_ttl_while_held(redis_url: str) -> None:
    locks, key = RedisLocks(redis_url, ttl=0.5), unique("vm-")
    with locks.hold(key):
        time.sleep(1.2)  # more than twice the TTL: the heartbeat keeps it
        assert locks.is_held(key)
    assert not locks.is_held(key)


HOLDER = """
import sys, time
from provisioning.locks import FileLocks, RedisLocks
kind, where, key = sys.argv[1:]
locks = RedisLocks(where, ttl=1.0) if kind == "redis" else FileLocks(where)
with locks.hold(key):
    print("held", flush=True)
    time.sleep(60)
"""


@pytest.mark.parametrize("kind", ["redis", "file"])
def test_a_killed_holder_lets_go(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    where = request.getfixturevalue("redis_url") if kind == "redis" else str(tmp_path)
    key = unique("vm-")
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, kind, where, key],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    locks: Locks = RedisLocks(where, ttl=1.0) if kind == "redis" else FileLocks(where)
    assert locks.is_held(key)
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    deadline = time.monotonic() + 5
    while locks.is_held(key):
        assert time.monotonic() < deadline, "the dead holder's lock never lapsed"
        time.sleep(0.1)
    with locks.hold(key):
        pass
