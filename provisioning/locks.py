"""Per-VM locks, so two workers never act on one VM at the same time.

`hold(key)` either holds the lock for the whole `with` block or raises `LockHeld` at once;
jobs turn that into a retry with backoff. A holder that dies lets go without help: a Redis
lock expires `ttl` seconds after its last heartbeat, a file lock is released by the kernel
when the process exits.
"""

from __future__ import annotations

import fcntl
import logging
import os
import re
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Protocol

import redis
from redis.exceptions import LockError, RedisError

from provisioning.errors import TransientError

log = logging.getLogger(__name__)


class LockHeld(TransientError):
    """Someone else is acting on this target; try again later."""


class Locks(Protocol):
    def hold(self, key: str) -> AbstractContextManager[None]:
        """A context manager that holds `key` exclusively across processes and machines for
        its block, or raises LockHeld at once when another holder has it."""
        ...

    def is_held(self, key: str) -> bool:
        """Whether someone holds `key` right now (a hint: it may change the next moment)."""
        ...


def vm_key(vm_id: int) -> str:
    return f"vm-{vm_id}"


class RedisLocks:
    """Locks in Redis, for workers on many machines. The lock carries a TTL that a heartbeat
    thread renews while the block runs, so a SIGKILLed worker's lock lapses within `ttl`."""

    def __init__(self, url: str, *, ttl: float = 60.0, prefix: str = "vmbot:lock:") -> None:
        self._client = redis.Redis.from_url(url)
        self._ttl = ttl
        self._prefix = prefix

    @contextmanager
    def hold(self, key: str) -> Iterator[None]:
        lock = self._client.lock(self._prefix + key, timeout=self._ttl, thread_local=False)
        try:
            acquired = lock.acquire(blocking=False)
        except RedisError as exc:
            raise LockHeld(f"the lock store is unreachable: {exc}") from exc
        if not acquired:
            raise LockHeld(f"{key} is busy with another worker")
        stop = threading.Event()

        def heartbeat() -> None:
            while not stop.wait(self._ttl / 3):
                try:
                    lock.reacquire()
                except (LockError, RedisError) as exc:
                    log.warning("lost the lock on %s: %s", key, exc)
                    return

        beat = threading.Thread(target=heartbeat, name=f"lock-{key}", daemon=True)
        beat.start()
        try:
            yield
        finally:
            stop.set()
            beat.join()
            try:
                lock.release()
            except (LockError, RedisError) as exc:
                log.warning("could not release the lock on %s: %s", key, exc)

    def is_held(self, key: str) -> bool:
        return bool(self._client.exists(self._prefix + key))


class FileLocks:
    """flock(2) locks under a directory, for the embedded setup on one machine."""

    def __init__(self, directory: str | Path) -> None:
        self._dir = Path(directory)
        self._dir.mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        return self._dir / (re.sub(r"[^A-Za-z0-9_.-]", "_", key) + ".lock")

    @contextmanager
    def hold(self, key: str) -> Iterator[None]:
        fd = os.open(self._path(key), os.O_RDWR | os.O_CREAT, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise LockHeld(f"{key} is busy with another worker") from None
            try:
                yield
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    def is_held(self, key: str) -> bool:
        try:
            with self.hold(key):
                return False
        except LockHeld:
            return True
