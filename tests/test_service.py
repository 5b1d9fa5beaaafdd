"""Request use cases and the state machine, on SQLite and PostgreSQL, with fake ports."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import pytest
from sqlalchemy import select

from db.engine import make_engine, make_session_factory
from db.models import AuditLog, RequestStatus, Role, Vm, VmStatus
from provisioning.errors import AlreadyDecided, IllegalTransition, NotAllowed
from provisioning.people import Actor, Directory
from provisioning.policy import PolicyConfig
from provisioning.service import RequestService
from provisioning.spec import Cost, Gpu, VmSpec
from provisioning.states import REQUEST_TRANSITIONS, VM_TRANSITIONS, move_request, move_vm
from tests.conftest import unique
from tests.fakes.ports import FakeClock, FakeJobQueue, FakeNotifier


@dataclass
class World:
    service: RequestService
    jobs: FakeJobQueue
    notifier: FakeNotifier
    sessions: object


@pytest.fixture
def world(db_url: str) -> Iterator[World]:
    engine = (
        make_engine(db_url, pool_size=25)
        if db_url.startswith("postgresql")
        else make_engine(db_url)
    )
    sessions = make_session_factory(engine)
    jobs, notifier = FakeJobQueue(), FakeNotifier()
    service = RequestService(
        sessions,
        jobs=jobs,
        notifier=notifier,
        clock=FakeClock(),
        policy=PolicyConfig(),
        directory=Directory(admins=frozenset({"U0BOSS"}), default_role=Role.REQUESTER),
        backend_name="local",
    )
    yield World(service, jobs, notifier, sessions)
    engine.dispose()


def spec(**changes) -> VmSpec:
    base = {
        "name": f"dev-{unique('').lower()}",
        "machine_type": "e2-standard-2",
        "vcpus": 2,
        "memory_gb": 8,
        "os_image": "ubuntu-2204-lts",
        "disk_gb": 30,
        "region": "us-central1",
        "ttl_hours": 2,
        "cost": Cost(usd_per_hour=0.07, usd_total=0.14),
    }
    return VmSpec(**{**base, **changes})


def actor() -> Actor:
    return Actor(team_id="T1", user_id=unique("U"))


def test_approve_creates_one_queued_vm_and_enqueues_after_commit(world: World) -> None:
    me = actor()
    view = world.service.create_request(me, "a dev box", spec())
    assert view.status is RequestStatus.SUGGESTED and view.policy_decision == "allow"
    approved = world.service.approve(view.id, me)
    assert approved.status is RequestStatus.APPROVED and approved.approver == me.user_id
    assert approved.vm is not None and approved.vm.status is VmStatus.QUEUED
    assert world.jobs.provisioned == [approved.vm.id]
    assert world.notifier.names(view.id) == ["queued"]
    with world.sessions() as session:  # type: ignore[operator]
        # the job was enqueued only once the VM row was committed and visible to others
        assert session.get(Vm, approved.vm.id) is not None


def test_second_approval_says_who_approved(world: World) -> None:
    me = actor()
    view = world.service.create_request(me, "a dev box", spec())
    world.service.approve(view.id, me)
    with pytest.raises(AlreadyDecided, match=f"already approved by <@{me.user_id}>"):
        world.service.approve(view.id, me)
    assert len(world.jobs.provisioned) == 1


def test_concurrent_approvals_one_winner(world: World, db_url: str) -> None:
    me = actor()
    view = world.service.create_request(me, "a dev box", spec())

    def attempt(_: int) -> str:
        try:
            world.service.approve(view.id, me)
            return "won"
        except (AlreadyDecided, IllegalTransition):
            return "lost"

    workers = 20 if db_url.startswith("postgresql") else 4
    with ThreadPoolExecutor(max_workers=workers) as pool:
        outcomes = list(pool.map(attempt, range(workers)))
    assert outcomes.count("won") == 1
    assert len(world.jobs.provisioned) == 1
    with world.sessions() as session:  # type: ignore[operator]
        assert len(session.scalars(select(Vm).where(Vm.request_id == view.id)).all()) == 1


def test_needs_approval_is_four_eyes(world: World) -> None:
    me, boss = actor(), Actor(team_id="T1", user_id="U0BOSS")
    gpu = spec(gpu=Gpu(type="nvidia-l4", count=1), cost=Cost(usd_per_hour=0.9, usd_total=1.8))
    view = world.service.create_request(me, "gpu box", gpu)
    assert view.policy_decision == "needs_approval"
    with pytest.raises(NotAllowed, match="cannot be you"):
        world.service.approve(view.id, me)
    pending = world.service.request_approval(view.id, me)
    assert pending.status is RequestStatus.PENDING_APPROVAL
    assert world.service.role_of(boss) is Role.ADMIN
    approved = world.service.approve(view.id, boss)
    assert approved.approver == "U0BOSS"
    assert world.notifier.names(view.id) == ["pending_approval", "queued"]


def test_revise_changes_spec_but_never_an_approved_request(world: World) -> None:
    me = actor()
    view = world.service.create_request(me, "a dev box", spec())
    bigger = spec(
        vcpus=4, machine_type="e2-standard-4", cost=Cost(usd_per_hour=0.13, usd_total=0.27)
    )
    revised = world.service.revise(view.id, me, "make it 4 cpus", bigger)
    assert revised.spec.vcpus == 4 and revised.spec.name == view.spec.name
    assert revised.original_text == "make it 4 cpus"
    world.service.approve(view.id, me)
    with pytest.raises(AlreadyDecided, match="can no longer be changed"):
        world.service.revise(view.id, me, "8 cpus", bigger)


def test_viewer_cannot_request(world: World, db_url: str) -> None:
    engine = make_engine(db_url)
    sessions = make_session_factory(engine)
    service = RequestService(
        sessions,
        jobs=FakeJobQueue(),
        notifier=FakeNotifier(),
        clock=FakeClock(),
        policy=PolicyConfig(),
        directory=Directory(admins=frozenset(), default_role=Role.VIEWER),
        backend_name="local",
    )
    with pytest.raises(NotAllowed, match="Viewers cannot request VMs"):
        service.create_request(actor(), "a dev box", spec())
    engine.dispose()


def test_every_illegal_move_is_refused_and_leaves_no_audit(world: World) -> None:
    me = actor()
    view = world.service.create_request(me, "a dev box", spec())
    world.service.approve(view.id, me)
    for target in RequestStatus:
        if target in REQUEST_TRANSITIONS[RequestStatus.APPROVED]:
            continue
        with world.sessions.begin() as session, pytest.raises(IllegalTransition):  # type: ignore[attr-defined]
            move_request(session, view.id, target, actor="test")
    vm_id = world.jobs.provisioned[0]
    for target in VmStatus:
        if target in VM_TRANSITIONS[VmStatus.QUEUED]:
            continue
        with world.sessions.begin() as session, pytest.raises(IllegalTransition):  # type: ignore[attr-defined]
            move_vm(session, vm_id, target, actor="test")
    with world.sessions() as session:  # type: ignore[operator]
        actions = session.scalars(
            select(AuditLog.action).where(
                AuditLog.target.in_([f"request:{view.id}", f"vm:{vm_id}"])
            )
        ).all()
    assert sorted(actions) == ["request.approved", "request.suggested"]


def test_transition_tables_are_closed() -> None:
    assert set(REQUEST_TRANSITIONS) == set(RequestStatus)
    assert set(VM_TRANSITIONS) == set(VmStatus)
    assert VM_TRANSITIONS[VmStatus.DESTROYED] == frozenset()
