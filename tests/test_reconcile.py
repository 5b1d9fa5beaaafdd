"""reconcile: VMs stuck in a transitional state are resumed, then failed; the database and
the cloud are squared (orphans reported or deleted, vanished VMs marked destroyed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from db.migrate import upgrade
from db.models import VmStatus
from provisioning.locks import vm_key
from provisioning.provisioner import MAX_RESUMES
from provisioning.states import move_vm
from tests.provisioning_world import World, build_world


@pytest.fixture(params=["sqlite", "postgresql"])
def world(request: pytest.FixtureRequest, tmp_path: Path) -> World:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'vmbot.sqlite'}"
        upgrade(url)
    else:
        url = request.getfixturevalue("scratch_pg_url")
    return build_world(url, tmp_path / "cloud")


def leave_in(world: World, vm_id: int, status: VmStatus) -> None:
    """What a worker that died mid-job leaves behind."""
    with world.sessions.begin() as session:
        move_vm(session, vm_id, status, actor="test", zone="us-central1-b")


def test_a_stuck_vm_is_resumed_then_failed_and_the_admins_told(world: World) -> None:
    vm_id = world.approved()
    leave_in(world, vm_id, VmStatus.PROVISIONING)
    assert world.provisioner.reconcile().resumed == []  # not stuck yet
    for attempt in range(MAX_RESUMES):
        world.clock.advance(minutes=20)
        assert world.provisioner.reconcile().resumed == [vm_id], attempt
    assert world.jobs.provisioned == [vm_id] * (MAX_RESUMES + 1)  # approval + resumes
    world.clock.advance(minutes=20)
    report = world.provisioner.reconcile()
    assert report.failed == [vm_id] and report.resumed == []
    assert world.vm(vm_id).status is VmStatus.FAILED
    assert len(world.notifier.alerts) == 1
    assert world.notifier.alerts[0].startswith(f"{world.vm(vm_id).name} was stuck provisioning")


def test_each_transitional_state_gets_its_own_job(world: World) -> None:
    stopping, destroying = world.approved(), world.approved()
    for vm_id in (stopping, destroying):
        world.provisioner.provision(vm_id)
    leave_in(world, stopping, VmStatus.STOPPING)
    leave_in(world, destroying, VmStatus.DESTROYING)
    world.clock.advance(minutes=20)
    assert sorted(world.provisioner.reconcile().resumed) == sorted([stopping, destroying])
    assert world.jobs.stopped == [stopping] and world.jobs.destroyed == [destroying]
    # The jobs then finish what was started.
    world.provisioner.stop(stopping)
    world.provisioner.destroy(destroying)
    assert world.vm(stopping).status is VmStatus.STOPPED
    assert world.vm(destroying).status is VmStatus.DESTROYED


def test_a_vm_someone_holds_is_left_alone(world: World) -> None:
    vm_id = world.approved()
    leave_in(world, vm_id, VmStatus.PROVISIONING)
    world.clock.advance(minutes=20)
    with world.locks.hold(vm_key(vm_id)):
        assert world.provisioner.reconcile().resumed == []
    assert world.provisioner.reconcile().resumed == [vm_id]


def test_an_unknown_instance_is_reported_once(world: World) -> None:
    from provisioning.backends.local import LocalBackend

    assert isinstance(world.backend, LocalBackend)
    stranger = world.approved(name="not-in-the-db-x")
    world.provisioner.provision(stranger)
    # The database forgets it (a restore from an old backup, say); the cloud still has it.
    with world.sessions.begin() as session:
        vm = session.get(type(world.vm(stranger)), stranger)
        assert vm is not None
        vm.name = "renamed-in-the-db"
    report = world.provisioner.reconcile()
    assert report.orphans_reported == ["not-in-the-db-x"]
    assert "Orphaned instance not-in-the-db-x in us-central1-b" in world.notifier.alerts[0]
    assert "gcloud compute instances delete not-in-the-db-x" in world.notifier.alerts[0]
    assert world.provisioner.reconcile().orphans_reported == []
    assert len(world.notifier.alerts) == 1
    assert world.backend.get("not-in-the-db-x", None) is not None  # never deleted blindly


def test_an_instance_of_a_destroyed_vm_is_deleted(world: World) -> None:
    vm_id = world.approved()
    world.provisioner.provision(vm_id)
    name = world.vm(vm_id).name
    with world.sessions.begin() as session:  # destroyed in the books, not in the cloud
        move_vm(session, vm_id, VmStatus.DESTROYING, actor="test")
        move_vm(session, vm_id, VmStatus.DESTROYED, actor="test")
    assert world.provisioner.reconcile().orphans_deleted == [name]
    assert world.backend.get(name, None) is None
    assert world.notifier.alerts == []


def test_a_vm_gone_from_the_cloud_is_marked_destroyed(world: World) -> None:
    vm_id = world.approved()
    world.provisioner.provision(vm_id)
    vm = world.vm(vm_id)
    world.backend.delete(vm.name, vm.zone)  # its max run duration ran out, say
    report = world.provisioner.reconcile()
    assert report.vanished == [vm_id]
    assert world.vm(vm_id).status is VmStatus.DESTROYED
    assert world.audit(vm_id)[-2:] == ["vm.destroying", "vm.destroyed"]
    assert world.provisioner.reconcile().vanished == []
