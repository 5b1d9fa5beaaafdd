"""The Provisioner on a real database (SQLite, and PostgreSQL where it matters) with the
simulated cloud: regions, startup scripts, stop/start, destroy, resuming, and locks."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from db.migrate import upgrade
from db.models import VmStatus
from provisioning.backends.local import LocalBackend
from provisioning.locks import FileLocks, LockHeld, vm_key
from provisioning.ports import Instance, InstanceRequest, Progress
from provisioning.spec import Cost
from tests.provisioning_world import World, build_world


class Crash(BaseException):
    """A worker dying mid-step: nothing in the provisioner may catch it."""


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'vmbot.sqlite'}"
    upgrade(url)
    return url


@pytest.fixture
def world(sqlite_url: str, tmp_path: Path) -> World:
    return build_world(sqlite_url, tmp_path / "cloud")


def test_provision_reaches_running_with_script_labels_and_region(world: World) -> None:
    vm_id = world.approved(packages=("django", "postgresql"))
    world.provisioner.provision(vm_id)
    vm = world.vm(vm_id)
    assert vm.status is VmStatus.RUNNING and vm.ip and vm.ip.startswith("203.0.113.")
    assert (vm.region, vm.zone) == ("us-central1", "us-central1-b")
    assert world.audit(vm_id) == ["vm.provisioning", "vm.running"]
    request_id = world.request_of(vm_id)
    assert world.notifier.details(request_id, "provisioning") == ["us-central1-b"]
    assert world.notifier.names(request_id)[-1] == "running"
    assert isinstance(world.backend, LocalBackend)
    record = world.backend.record(vm.name)
    assert record is not None
    assert record["startup_script"].startswith("#!/bin/bash\n")
    assert (
        "apt-get install -y -q python3 python3-pip python3-venv postgresql"
        in (record["startup_script"])
    )
    labels = record["labels"]
    assert labels["managed-by"] == "vmbot" and labels["request"] == str(request_id)
    assert int(labels["expires"]) == int(world.clock.now().timestamp()) + 2 * 3600


def test_provisioning_twice_does_nothing_the_second_time(world: World) -> None:
    vm_id = world.approved()
    world.provisioner.provision(vm_id)
    world.provisioner.provision(vm_id)
    assert world.audit(vm_id) == ["vm.provisioning", "vm.running"]
    assert isinstance(world.backend, LocalBackend)
    assert len(world.backend.inserts()) == 1


def test_a_full_region_sends_the_vm_to_the_next_and_says_so(
    sqlite_url: str, tmp_path: Path
) -> None:
    world = build_world(sqlite_url, tmp_path / "cloud", caps={"us-central1": 2})
    first, second = world.approved(), world.approved()
    world.provisioner.provision(first)
    world.provisioner.provision(second)
    assert world.vm(first).region == "us-central1"
    moved = world.vm(second)
    assert (moved.region, moved.zone, moved.status) == ("us-east1", "us-east1-b", VmStatus.RUNNING)
    note = world.notifier.details(world.request_of(second), "provisioning")[0]
    assert note.startswith("us-east1-b (us-central1 is full")
    assert moved.status_detail == "Running"


def test_nowhere_to_go_fails_with_a_clear_message(sqlite_url: str, tmp_path: Path) -> None:
    caps = dict.fromkeys(("us-east1", "us-central1", "us-west1"), 0)
    world = build_world(sqlite_url, tmp_path / "cloud", caps=caps)
    world.regions.fallback = "mars-north1"  # a fallback that offers nothing
    vm_id = world.approved()
    world.provisioner.provision(vm_id)
    vm = world.vm(vm_id)
    assert vm.status is VmStatus.FAILED
    reason = world.notifier.details(world.request_of(vm_id), "failed")[0]
    assert reason.startswith("Every region is full for 2 vCPUs: us-central1 is at 0/0;")
    assert "ask an admin to raise the caps" in reason
    assert vm.status_detail == reason
    assert world.backend.list_managed() == []


def test_failure_on_demand_fails_the_vm(sqlite_url: str, tmp_path: Path) -> None:
    backend = LocalBackend(
        tmp_path / "cloud",
        step_seconds=0,
        sleep=lambda _: None,
        fail_machine_types=frozenset({"e2-standard-2"}),
    )
    world = build_world(sqlite_url, tmp_path, backend=backend)
    vm_id = world.approved()
    world.provisioner.provision(vm_id)
    assert world.vm(vm_id).status is VmStatus.FAILED
    assert "failure on demand" in world.notifier.details(world.request_of(vm_id), "failed")[0]


def test_stop_then_start(world: World) -> None:
    vm_id = world.approved()
    world.provisioner.provision(vm_id)
    before = world.vm(vm_id)
    world.provisioner.stop(vm_id)
    stopped = world.vm(vm_id)
    assert stopped.status is VmStatus.STOPPED and stopped.ip is None
    world.provisioner.stop(vm_id)  # a second stop is a no-op
    world.provisioner.start(vm_id)
    started = world.vm(vm_id)
    assert started.status is VmStatus.RUNNING and started.ip == before.ip
    assert started.expires_at == before.expires_at  # the clock keeps running while stopped
    assert world.audit(vm_id) == [
        "vm.provisioning",
        "vm.running",
        "vm.stopping",
        "vm.stopped",
        "vm.provisioning",
        "vm.running",
    ]
    names = world.notifier.names(world.request_of(vm_id))
    assert names[-4:] == ["stopping", "stopped", "progress", "running"]


def test_destroy_is_idempotent(world: World) -> None:
    vm_id = world.approved()
    world.provisioner.provision(vm_id)
    world.provisioner.destroy(vm_id, reason="done with it")
    world.provisioner.destroy(vm_id, reason="done with it")
    vm = world.vm(vm_id)
    assert vm.status is VmStatus.DESTROYED and vm.deleted_at is not None
    assert world.backend.get(vm.name, vm.zone) is None
    world.provisioner.provision(vm_id)
    assert world.vm(vm_id).status is VmStatus.DESTROYED


def test_a_held_lock_turns_a_job_away_untouched(world: World) -> None:
    vm_id = world.approved()
    with world.locks.hold(vm_key(vm_id)):
        for job in (world.provisioner.provision, world.provisioner.stop, world.provisioner.start):
            with pytest.raises(LockHeld):
                job(vm_id)
    assert world.vm(vm_id).status is VmStatus.QUEUED
    world.provisioner.provision(vm_id)
    assert world.vm(vm_id).status is VmStatus.RUNNING


def test_a_crash_mid_create_is_resumed_without_a_second_instance(
    sqlite_url: str, tmp_path: Path
) -> None:
    def dies(_: float) -> None:
        raise Crash

    dying = LocalBackend(tmp_path / "cloud", step_seconds=1, sleep=dies)
    world = build_world(sqlite_url, tmp_path, backend=dying)
    vm_id = world.approved()
    with pytest.raises(Crash):
        world.provisioner.provision(vm_id)
    assert world.vm(vm_id).status is VmStatus.PROVISIONING
    assert not world.locks.held, "a dying worker's lock is let go"

    healthy = LocalBackend(tmp_path / "cloud", step_seconds=0, sleep=lambda _: None)
    again = build_world(sqlite_url, tmp_path, backend=healthy)
    again.provisioner.provision(vm_id)
    vm = again.vm(vm_id)
    assert vm.status is VmStatus.RUNNING
    assert healthy.inserts() == [vm.name]
    assert again.audit(vm_id) == ["vm.provisioning", "vm.provisioning", "vm.running"]


def test_two_workers_on_one_vm_make_one_instance(scratch_pg_url: str, tmp_path: Path) -> None:
    slow = LocalBackend(tmp_path / "cloud", step_seconds=0.3)
    world = build_world(scratch_pg_url, tmp_path, backend=slow)
    world.provisioner._locks = FileLocks(tmp_path / "locks")  # a real cross-process lock
    vm_id = world.approved()

    def attempt(_: int) -> str:
        try:
            world.provisioner.provision(vm_id)
            return "ran"
        except LockHeld:
            return "busy"

    with ThreadPoolExecutor(max_workers=6) as pool:
        outcomes = list(pool.map(attempt, range(6)))
    assert outcomes.count("ran") >= 1
    assert world.vm(vm_id).status is VmStatus.RUNNING
    assert world.audit(vm_id) == ["vm.provisioning", "vm.running"]
    assert slow.inserts() == [world.vm(vm_id).name]


class RecordingBackend(LocalBackend):
    """The local cloud, remembering what it was asked to create."""

    def __init__(self, state_dir: Path) -> None:
        super().__init__(state_dir, step_seconds=0, sleep=lambda _: None)
        self.requests: list[InstanceRequest] = []

    def create(self, request: InstanceRequest, progress: Progress) -> Instance:
        self.requests.append(request)
        return super().create(request, progress)


@pytest.mark.parametrize(("ttl", "backstop"), [(2.0, 72.0), (24.0, 72.0)])
def test_backstop_is_the_longest_lifetime_the_role_allows(
    sqlite_url: str, tmp_path: Path, ttl: float | None, backstop: float | None
) -> None:
    """Every extension the policy allows stays inside Compute Engine's max_run_duration."""
    backend = RecordingBackend(tmp_path / "cloud")
    world = build_world(sqlite_url, tmp_path, backend=backend, lifetime_limit=lambda role: 72.0)
    cost = Cost(usd_per_hour=0.07, usd_total=0.07 * ttl if ttl else None)
    vm_id = world.approved(ttl_hours=ttl, cost=cost)
    world.provisioner.provision(vm_id)
    assert backend.requests[-1].max_run_hours == backstop


def test_policy_can_stop_rather_than_destroy_at_expiry(sqlite_url: str, tmp_path: Path) -> None:
    world = build_world(sqlite_url, tmp_path / "cloud", expiry_action="stop")
    vm_id = world.approved()
    world.provisioner.provision(vm_id)
    world.clock.advance(hours=3)
    assert world.provisioner.expire_due() == [vm_id]
    assert world.vm(vm_id).status is VmStatus.STOPPED
    assert world.provisioner.expire_due() == []  # stopped once; not again every round
