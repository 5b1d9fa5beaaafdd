"""The small interfaces through which provisioning reaches the outside world.

Each has a real adapter and a hand-written fake; both pass the same contract tests.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from provisioning.views import RequestView


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, timezone-aware UTC."""
        ...


class JobQueue(Protocol):
    def enqueue_provision(self, vm_id: int) -> None:
        """Schedule provisioning of the VM row `vm_id`. Call only after the row is committed."""
        ...

    def enqueue_destroy(self, vm_id: int) -> None:
        """Schedule destruction of the VM row `vm_id`. Call only after the commit."""
        ...

    def enqueue_stop(self, vm_id: int) -> None:
        """Schedule stopping the VM row `vm_id` (running -> stopping -> stopped)."""
        ...

    def enqueue_start(self, vm_id: int) -> None:
        """Schedule starting the stopped VM row `vm_id` (stopped -> provisioning -> running)."""
        ...


class Notifier(Protocol):
    def request_changed(
        self, view: RequestView, event: str | None = None, detail: str = ""
    ) -> None:
        """Redraw every copy of the request's card; say what happened in its thread when
        `event` (queued, provisioning, progress, running, failed, …) is given.

        Never raises: a notification that cannot be delivered is logged, not fatal to the job.
        """
        ...

    def admin_alert(self, text: str) -> None:
        """Tell the admin channel something needs a human (orphans, stuck VMs, quota).

        Never raises, like `request_changed`; without an admin channel it only logs.
        """
        ...


@dataclass(frozen=True)
class InstanceRequest:
    name: str
    machine_type: str
    region: str
    zone: str | None
    os_image: str
    disk_gb: int
    disk_type: str
    gpu_type: str | None
    gpu_count: int
    spot: bool
    packages: tuple[str, ...]
    labels: dict[str, str]
    max_run_hours: float | None
    os_family: str = "linux"
    startup_script: str | None = None  # rendered from allow-listed recipes only
    ssh_keys: tuple[str, ...] = ()  # "user:ssh-ed25519 AAAA… comment" lines
    source_ranges: tuple[str, ...] = ("35.235.240.0/20",)  # who may reach SSH/RDP
    public_ip: bool = True


@dataclass(frozen=True)
class Instance:
    name: str
    instance_id: str
    zone: str
    status: str  # RUNNING, STOPPED, ...
    ip: str | None


Progress = Callable[[str], None]


class CloudBackend(Protocol):
    name: str

    def create(self, request: InstanceRequest, progress: Progress) -> Instance:
        """Create the instance, or return it if one with this name exists already.

        Idempotent by name: calling it again after a crash never makes a second instance.
        `progress` receives short human-readable steps ("Installing docker…").
        """
        ...

    def delete(self, name: str, zone: str | None) -> None:
        """Delete the instance; deleting one that does not exist is not an error."""
        ...

    def get(self, name: str, zone: str | None) -> Instance | None:
        """The instance as the cloud sees it now, or None if it does not exist."""
        ...

    def stop(self, name: str, zone: str | None) -> Instance:
        """Stop the instance (idempotent: stopping a stopped instance is fine)."""
        ...

    def start(self, name: str, zone: str | None) -> Instance:
        """Start a stopped instance (idempotent); the returned Instance has its new IP."""
        ...

    def list_managed(self) -> list[Instance]:
        """Every instance labelled managed-by=vmbot, for reconcile to find orphans."""
        ...
