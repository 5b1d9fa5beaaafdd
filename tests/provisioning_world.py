"""A provisioning world for tests: a real database, the local cloud, fakes for the rest."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from db.engine import make_engine, make_session_factory
from db.models import AuditLog, Role, Vm
from provisioning.backends.local import LocalBackend
from provisioning.catalog import default_catalog
from provisioning.people import Actor, Directory
from provisioning.policy import PolicyConfig
from provisioning.ports import CloudBackend
from provisioning.provisioner import Provisioner
from provisioning.regions import RegionChooser
from provisioning.service import RequestService
from provisioning.spec import Cost, VmSpec
from tests.conftest import unique
from tests.fakes.ports import FakeClock, FakeJobQueue, FakeLocks, FakeNotifier

PRIORITY = ("us-east1", "us-central1", "us-west1")


@dataclass
class World:
    sessions: sessionmaker[Session]
    requests: RequestService
    provisioner: Provisioner
    backend: CloudBackend
    jobs: FakeJobQueue
    notifier: FakeNotifier
    clock: FakeClock
    locks: FakeLocks
    regions: RegionChooser
    vms: list[int] = field(default_factory=list)

    def approved(self, **changes: object) -> int:
        """A VM approved and queued, as the web process leaves it; returns its id."""
        actor = Actor(team_id="T1", user_id=unique("U"))
        view = self.requests.create_request(actor, "a dev box", spec(**changes))
        self.requests.approve(view.id, actor)
        vm_id = self.jobs.provisioned[-1]
        self.vms.append(vm_id)
        return vm_id

    def vm(self, vm_id: int) -> Vm:
        with self.sessions() as session:
            found = session.get(Vm, vm_id)
            assert found is not None
            return found

    def audit(self, vm_id: int) -> list[str]:
        with self.sessions() as session:
            return list(
                session.scalars(
                    select(AuditLog.action)
                    .where(AuditLog.target == f"vm:{vm_id}")
                    .order_by(AuditLog.id)
                )
            )

    def request_of(self, vm_id: int) -> int:
        return self.vm(vm_id).request_id


def spec(**changes: object) -> VmSpec:
    base: dict[str, object] = {
        "name": f"dev-{unique('').lower()}",
        "machine_type": "e2-standard-2",
        "vcpus": 2,
        "memory_gb": 8,
        "os_image": "ubuntu-2204-lts",
        "disk_gb": 30,
        "region": "us-central1",
        "packages": ("redis",),
        "ttl_hours": 2,
        "cost": Cost(usd_per_hour=0.07, usd_total=0.14),
    }
    return VmSpec(**{**base, **changes})  # type: ignore[arg-type]


def build_world(
    url: str,
    state_dir: Path,
    *,
    backend: CloudBackend | None = None,
    caps: dict[str, int] | None = None,
    lifetime_limit: Callable[[Role], float] | None = None,
    expiry_action: str = "destroy",
) -> World:
    engine = make_engine(url)
    sessions = make_session_factory(engine)
    jobs, notifier = FakeJobQueue(), FakeNotifier()
    clock = FakeClock(current=datetime.now(UTC))
    requests = RequestService(
        sessions,
        jobs=jobs,
        notifier=notifier,
        clock=clock,
        policy=PolicyConfig(),
        directory=Directory(admins=frozenset(), default_role=Role.REQUESTER),
        backend_name="local",
    )
    backend = backend or LocalBackend(state_dir, step_seconds=0, sleep=lambda _: None)
    regions = RegionChooser(
        catalog=default_catalog(),
        priority=PRIORITY,
        fallback="northamerica-northeast1",
        caps=caps or {},
    )
    locks = FakeLocks()
    provisioner = Provisioner(
        sessions,
        backend=backend,
        notifier=notifier,
        clock=clock,
        requests=requests,
        jobs=jobs,
        locks=locks,
        regions=regions,
        lifetime_limit=lifetime_limit,
        expiry_action=expiry_action,
    )
    return World(sessions, requests, provisioner, backend, jobs, notifier, clock, locks, regions)
