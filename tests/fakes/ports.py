"""Hand-written fakes of provisioning's ports, for tests that need no real Celery or Slack."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from provisioning.views import RequestView


@dataclass
class FakeJobQueue:
    provisioned: list[int] = field(default_factory=list)
    destroyed: list[int] = field(default_factory=list)

    def enqueue_provision(self, vm_id: int) -> None:
        self.provisioned.append(vm_id)

    def enqueue_destroy(self, vm_id: int) -> None:
        self.destroyed.append(vm_id)


@dataclass
class FakeNotifier:
    events: list[tuple[int, str | None, str]] = field(default_factory=list)
    views: list[RequestView] = field(default_factory=list)

    def request_changed(
        self, view: RequestView, event: str | None = None, detail: str = ""
    ) -> None:
        self.events.append((view.id, event, detail))
        self.views.append(view)

    def names(self, request_id: int) -> list[str | None]:
        return [event for rid, event, _ in self.events if rid == request_id]


@dataclass
class FakeClock:
    current: datetime = field(default_factory=lambda: datetime(2026, 12, 4, 12, 0, tzinfo=UTC))

    def now(self) -> datetime:
        return self.current

    def advance(self, **kwargs: float) -> None:
        self.current += timedelta(**kwargs)
