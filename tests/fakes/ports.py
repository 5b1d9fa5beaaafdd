"""Hand-written fakes of provisioning's ports, for tests that need no real Celery or Slack."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from provisioning.locks import LockHeld
from provisioning.views import RequestView


@dataclass
class FakeJobQueue:
    provisioned: list[int] = field(default_factory=list)
    destroyed: list[int] = field(default_factory=list)
    stopped: list[int] = field(default_factory=list)
    started: list[int] = field(default_factory=list)

    def enqueue_provision(self, vm_id: int) -> None:
        self.provisioned.append(vm_id)

    def enqueue_destroy(self, vm_id: int) -> None:
        self.destroyed.append(vm_id)

    def enqueue_stop(self, vm_id: int) -> None:
        self.stopped.append(vm_id)

    def enqueue_start(self, vm_id: int) -> None:
        self.started.append(vm_id)


@dataclass
class FakeNotifier:
    events: list[tuple[int, str | None, str]] = field(default_factory=list)
    views: list[RequestView] = field(default_factory=list)
    alerts: list[str] = field(default_factory=list)

    def request_changed(
        self, view: RequestView, event: str | None = None, detail: str = ""
    ) -> None:
        self.events.append((view.id, event, detail))
        self.views.append(view)

    def admin_alert(self, text: str) -> None:
        self.alerts.append(text)

    def details(self, request_id: int, event: str) -> list[str]:
        return [d for rid, e, d in self.events if rid == request_id and e == event]

    def names(self, request_id: int) -> list[str | None]:
        return [event for rid, event, _ in self.events if rid == request_id]


@dataclass
class FakeClock:
    current: datetime = field(default_factory=lambda: datetime(2026, 12, 4, 12, 0, tzinfo=UTC))

    def now(self) -> datetime:
        return self.current

    def advance(self, **kwargs: float) -> None:
        self.current += timedelta(**kwargs)


@dataclass
class FakeLocks:
    """In-memory locks with the same contract as provisioning.locks: hold or raise LockHeld."""

    held: set[str] = field(default_factory=set)
    _guard: threading.Lock = field(default_factory=threading.Lock)

    @contextmanager
    def hold(self, key: str) -> Iterator[None]:
        with self._guard:
            if key in self.held:
                raise LockHeld(f"{key} is busy with another worker")
            self.held.add(key)
        try:
            yield
        finally:
            with self._guard:
                self.held.discard(key)

    def is_held(self, key: str) -> bool:
        with self._guard:
            return key in self.held
