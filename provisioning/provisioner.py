"""What the worker does with a VM row: provision, stop, start, destroy, expire, reconcile.

Every method takes ids, holds the VM's lock while it acts, reloads the row and returns early
when the work is already done, so a redelivered job, a retry or a second worker is harmless.
A VM left in a transitional state by a dead worker is picked up again: the job resumes from
the state it finds (provisioning resumes a create or a start, stopping a stop, destroying a
destroy), and `reconcile` enqueues that job when nobody holds the VM.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from db.models import AuditLog, Role, Vm, VmStatus
from provisioning import startup
from provisioning.catalog import CatalogError, price_spec
from provisioning.errors import BackendError, IllegalTransition, TransientError
from provisioning.locks import LockHeld, Locks, vm_key
from provisioning.ports import Clock, CloudBackend, Instance, InstanceRequest, JobQueue, Notifier
from provisioning.recipes import UnknownRecipe
from provisioning.regions import NoRegion, RegionChooser, vcpus_in_use
from provisioning.service import RequestService, ttl_delta
from provisioning.spec import VmSpec
from provisioning.states import move_vm

log = logging.getLogger(__name__)

WORKER = "worker"
RECONCILE = "reconcile"
# A queued VM whose job has not started by then was probably never enqueued (crash between
# commit and enqueue) or its message was lost; it is enqueued again.
STALE_QUEUED = timedelta(minutes=2)
# How often reconcile resumes a stuck VM before it gives up, fails it and tells the admins.
MAX_RESUMES = 3
PLACEMENT = "placement"
TRANSITIONAL = (VmStatus.PROVISIONING, VmStatus.STOPPING, VmStatus.DESTROYING)


@dataclass(frozen=True)
class _Snapshot:
    """What a job needs from the VM row, read once under the lock."""

    id: int
    name: str
    status: VmStatus
    region: str
    zone: str | None
    request_id: int
    instance_id: str | None
    owner: str
    ssh_key: str | None
    spec: VmSpec
    owner_role: Role


@dataclass
class ReconcileReport:
    resumed: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)
    vanished: list[int] = field(default_factory=list)
    orphans_deleted: list[str] = field(default_factory=list)
    orphans_reported: list[str] = field(default_factory=list)


class Provisioner:
    def __init__(
        self,
        session_factory: sessionmaker[Session],
        *,
        backend: CloudBackend,
        notifier: Notifier,
        clock: Clock,
        requests: RequestService,
        jobs: JobQueue,
        locks: Locks,
        regions: RegionChooser | None = None,
        stuck_after: timedelta = timedelta(minutes=15),
        sleep: Callable[[float], None] = time.sleep,
        lifetime_limit: Callable[[Role], float] | None = None,
        expiry_action: str = "destroy",
    ) -> None:
        self._sessions = session_factory
        self._backend = backend
        self._notifier = notifier
        self._clock = clock
        self._requests = requests
        self._jobs = jobs
        self._locks = locks
        self._regions = regions
        self._stuck_after = stuck_after
        self._sleep = sleep
        # The longest a VM of a role may live, extensions included: the cloud-side backstop.
        self._lifetime_limit = lifetime_limit
        self._expiry_action = expiry_action  # the policy's vm_expiry.action: destroy or stop

    # -- helpers --------------------------------------------------------------------------

    def _notify(self, request_id: int, event: str, detail: str = "") -> None:
        self._notifier.request_changed(self._requests.get(request_id), event, detail)

    def _snapshot(self, vm_id: int) -> _Snapshot | None:
        with self._sessions() as session:
            vm = session.get(Vm, vm_id)
            if vm is None:
                return None
            requester = vm.request.requester
            return _Snapshot(
                id=vm.id,
                name=vm.name,
                status=vm.status,
                region=vm.region,
                zone=vm.zone,
                request_id=vm.request_id,
                instance_id=vm.instance_id,
                owner=requester.slack_user_id,
                ssh_key=requester.ssh_public_key,
                spec=VmSpec.model_validate(vm.request.spec),
                owner_role=requester.role,
            )

    @contextmanager
    def _briefly(self, key: str, seconds: float = 5.0) -> Iterator[None]:
        """Hold `key`, waiting up to `seconds` for it: for short critical sections only."""
        deadline = time.monotonic() + seconds
        while True:
            try:
                lock = self._locks.hold(key)
                lock.__enter__()
            except LockHeld:
                if time.monotonic() > deadline:
                    raise
                self._sleep(0.05)
                continue
            break
        try:
            yield
        finally:
            lock.__exit__(None, None, None)

    def _move(self, vm_id: int, to: VmStatus, **kwargs: Any) -> None:
        with self._sessions.begin() as session:
            move_vm(session, vm_id, to, actor=kwargs.pop("actor", WORKER), **kwargs)

    def fail(self, vm_id: int, reason: str, *, actor: str = WORKER) -> None:
        """Mark the VM failed with `reason` and say so in its thread (and to the admins)."""
        try:
            self._move(
                vm_id,
                VmStatus.FAILED,
                actor=actor,
                details={"reason": reason[:500]},
                status_detail=reason[:500],
            )
        except IllegalTransition as exc:
            log.info("not failing VM %s: %s", vm_id, exc)
            return
        request_id = self._request_of(vm_id)
        if request_id is not None:
            self._notify(request_id, "failed", reason)

    def _request_of(self, vm_id: int) -> int | None:
        with self._sessions() as session:
            return session.scalar(select(Vm.request_id).where(Vm.id == vm_id))

    # -- provision ------------------------------------------------------------------------

    def provision(self, vm_id: int) -> None:
        """Take a queued VM to running, or resume one a dead worker left provisioning.

        Raises TransientError (LockHeld included) when it is worth trying again later.
        """
        with self._locks.hold(vm_key(vm_id)):
            vm = self._snapshot(vm_id)
            if vm is None:
                log.warning("provision_vm: no VM %s", vm_id)
                return
            if vm.status is VmStatus.QUEUED:
                placed = self._place(vm)
                if placed is None:
                    return
                vm = placed
            elif vm.status is VmStatus.PROVISIONING:
                self._move(
                    vm_id,
                    VmStatus.PROVISIONING,
                    only_from={VmStatus.PROVISIONING},
                    details={"resumed": True},
                    status_detail=f"Resuming in {vm.zone}",
                )
                self._notify(vm.request_id, "progress", f"Picking up {vm.name} again in {vm.zone}")
            else:
                log.info("provision_vm: VM %s is %s already; nothing to do", vm_id, vm.status)
                return
            self._bring_up(vm)

    def _place(self, vm: _Snapshot) -> _Snapshot | None:
        """Choose the region and zone, and move the VM to provisioning there."""
        spec = vm.spec
        region, note, details = spec.region, "", {}
        with self._briefly(PLACEMENT):
            if self._regions is not None:
                demand = self._regions.demand(
                    spec.machine_type, spec.vcpus, spec.gpu.type if spec.gpu else None
                )

                def in_use() -> dict[str, float]:
                    with self._sessions() as session:
                        return vcpus_in_use(session, exclude_vm=vm.id)

                try:
                    chosen = self._regions.choose(demand, spec.region, in_use)
                except NoRegion as exc:
                    self.fail(vm.id, str(exc))  # the failure reaches the admin channel too
                    return None
                region = chosen.id
                details = {"region": region, "why": chosen.why, "vcpus_after": chosen.vcpus_after}
                if region != spec.region:
                    note, details = self._moved_note(spec, region, chosen.why, details)
            zone = spec.zone if (spec.zone and region == spec.region) else f"{region}-b"
            try:
                self._move(
                    vm.id,
                    VmStatus.PROVISIONING,
                    only_from={VmStatus.QUEUED},
                    details={**details, "zone": zone},
                    region=region,
                    zone=zone,
                    status_detail=f"Provisioning in {zone}{note}",
                )
            except IllegalTransition:
                return None  # another worker took it between our read and our write
        self._notify(vm.request_id, "provisioning", f"{zone}{note}")
        return replace(vm, status=VmStatus.PROVISIONING, region=region, zone=zone)

    def _moved_note(
        self, spec: VmSpec, region: str, why: str, details: dict[str, Any]
    ) -> tuple[str, dict[str, Any]]:
        assert self._regions is not None
        reason = "full" if why != "fallback" else "full, as is every region on the list"
        note = f" ({spec.region} is {reason})"
        try:
            cost = price_spec(self._regions.catalog, spec.model_copy(update={"region": region}))
        except CatalogError:
            return note, details
        if abs(cost.usd_per_hour - spec.cost.usd_per_hour) >= 0.0005:
            note = f" ({spec.region} is {reason}; now ${cost.usd_per_hour:.3f}/h)"
        return note, {**details, "usd_per_hour": cost.usd_per_hour}

    def _backstop_hours(self, vm: _Snapshot) -> float | None:
        """Compute Engine deletes the VM after this many hours even if we are down.

        It is set to the longest lifetime the owner's role allows, not to the TTL: a running
        VM's max_run_duration cannot be moved (terraform would replace the instance), and this
        way every extension the policy allows stays inside the backstop.
        """
        ttl = vm.spec.ttl_hours
        if ttl is None:
            return None
        if self._lifetime_limit is None:
            return ttl
        return max(ttl, self._lifetime_limit(vm.owner_role))

    def _instance_request(self, vm: _Snapshot) -> InstanceRequest:
        spec = vm.spec
        owner = vm.owner.lower()
        labels = {"managed-by": "vmbot", "owner": owner, "request": str(vm.request_id)}
        ttl = ttl_delta(spec)
        if ttl is not None:
            labels["expires"] = str(int((self._clock.now() + ttl).timestamp()))
        return InstanceRequest(
            name=vm.name,
            machine_type=spec.machine_type,
            region=vm.region,
            zone=vm.zone,
            os_image=spec.os_image,
            disk_gb=spec.disk_gb,
            disk_type=spec.disk_type,
            gpu_type=spec.gpu.type if spec.gpu else None,
            gpu_count=spec.gpu.count if spec.gpu else 0,
            spot=spec.spot,
            packages=spec.packages,
            labels=labels,
            max_run_hours=self._backstop_hours(vm),
            os_family=spec.os_family,
            startup_script=startup.render(spec.packages, spec.os_family, spec.os_image),
            ssh_keys=(f"{owner}:{vm.ssh_key.strip()}",) if vm.ssh_key else (),
        )

    def _bring_up(self, vm: _Snapshot) -> None:
        def progress(step: str) -> None:
            with self._sessions.begin() as session:
                row = session.get(Vm, vm.id)
                if row is not None:
                    row.status_detail = step[:500]
            self._notify(vm.request_id, "progress", step)

        try:
            if vm.instance_id:  # it ran before: this is a start, resumed
                instance = self._backend.start(vm.name, vm.zone)
            else:
                instance = self._backend.create(self._instance_request(vm), progress)
        except (BackendError, UnknownRecipe, startup.StartupError) as exc:
            self.fail(vm.id, str(exc))
            return
        self._running(vm, instance)

    def _running(self, vm: _Snapshot, instance: Instance) -> None:
        now = self._clock.now()
        with self._sessions.begin() as session:
            row = session.get(Vm, vm.id)
            expires = row.expires_at if row is not None else None
            if expires is None and (ttl := ttl_delta(vm.spec)) is not None:
                expires = now + ttl
            move_vm(
                session,
                vm.id,
                VmStatus.RUNNING,
                actor=WORKER,
                only_from={VmStatus.PROVISIONING},
                details={"ip": instance.ip, "instance_id": instance.instance_id},
                ip=instance.ip,
                instance_id=instance.instance_id,
                zone=instance.zone,
                running_at=now,
                expires_at=expires,
                status_detail="Running",
            )
        self._notify(vm.request_id, "running")

    # -- stop and start -------------------------------------------------------------------

    def stop(self, vm_id: int) -> None:
        """running -> stopping -> stopped; a stopped VM is left as it is."""
        with self._locks.hold(vm_key(vm_id)):
            vm = self._snapshot(vm_id)
            if vm is None or vm.status not in (VmStatus.RUNNING, VmStatus.STOPPING):
                return
            if vm.status is VmStatus.RUNNING:
                self._move(
                    vm_id,
                    VmStatus.STOPPING,
                    only_from={VmStatus.RUNNING},
                    status_detail="Stopping",
                )
                self._notify(vm.request_id, "stopping")
            try:
                self._backend.stop(vm.name, vm.zone)
            except BackendError as exc:
                self.fail(vm_id, f"Stop failed: {exc}")
                return
            self._move(
                vm_id,
                VmStatus.STOPPED,
                only_from={VmStatus.STOPPING},
                ip=None,
                status_detail="Stopped",
            )
        self._notify(vm.request_id, "stopped")

    def start(self, vm_id: int) -> None:
        """stopped -> provisioning -> running, with the VM's new address."""
        with self._locks.hold(vm_key(vm_id)):
            vm = self._snapshot(vm_id)
            if vm is None or vm.status is not VmStatus.STOPPED:
                return
            self._move(
                vm_id,
                VmStatus.PROVISIONING,
                only_from={VmStatus.STOPPED},
                details={"start": True},
                status_detail=f"Starting in {vm.zone}",
            )
            self._notify(vm.request_id, "progress", f"Starting {vm.name} in {vm.zone}")
            try:
                instance = self._backend.start(vm.name, vm.zone)
            except BackendError as exc:
                self.fail(vm_id, f"Start failed: {exc}")
                return
            self._running(vm, instance)

    # -- destroy --------------------------------------------------------------------------

    def destroy(self, vm_id: int, *, reason: str = "") -> None:
        with self._locks.hold(vm_key(vm_id)):
            vm = self._snapshot(vm_id)
            if vm is None or vm.status is VmStatus.DESTROYED:
                return
            if vm.status is not VmStatus.DESTROYING:
                try:
                    self._move(
                        vm_id,
                        VmStatus.DESTROYING,
                        details={"reason": reason},
                        status_detail=reason or "Destroying",
                    )
                except IllegalTransition:
                    return
                self._notify(vm.request_id, "destroying", reason)
            try:
                self._backend.delete(vm.name, vm.zone)
            except BackendError as exc:
                self.fail(vm_id, f"Destroy failed: {exc}")
                return
            self._move(
                vm_id,
                VmStatus.DESTROYED,
                deleted_at=self._clock.now(),
                ip=None,
                status_detail="Destroyed",
            )
        self._notify(vm.request_id, "destroyed", reason)

    # -- beat -----------------------------------------------------------------------------

    def expire_due(self) -> list[int]:
        """Destroy (or, if the policy says so, stop) every VM whose time is over; returns ids."""
        now = self._clock.now()
        stopping = self._expiry_action == "stop"
        # A stopped VM has already had its expiry when the policy stops rather than destroys.
        states = [VmStatus.RUNNING] if stopping else [VmStatus.RUNNING, VmStatus.STOPPED]
        with self._sessions() as session:
            due = list(
                session.scalars(
                    select(Vm.id).where(
                        Vm.status.in_(states),
                        Vm.expires_at.is_not(None),
                        Vm.expires_at <= now,
                    )
                )
            )
        for vm_id in due:
            try:
                if stopping:
                    self.stop(vm_id)
                else:
                    self.destroy(vm_id, reason="Expired: its time was up")
            except TransientError as exc:  # LockHeld included: busy VMs expire next round
                log.info("VM %s did not expire this round: %s", vm_id, exc)
        return due

    def requeue_stale(self) -> list[int]:
        """Enqueue again VMs left queued too long; provisioning is idempotent, so this is safe."""
        cutoff = self._clock.now() - STALE_QUEUED
        with self._sessions() as session:
            stale = list(
                session.scalars(
                    select(Vm.id).where(Vm.status == VmStatus.QUEUED, Vm.updated_at < cutoff)
                )
            )
        for vm_id in stale:
            self._jobs.enqueue_provision(vm_id)
        return stale

    def reconcile(self) -> ReconcileReport:
        """Resume or fail VMs stuck in a transitional state, and square the database with
        the cloud: instances nobody knows are reported, instances of destroyed VMs deleted,
        VMs whose instance vanished marked destroyed."""
        report = ReconcileReport()
        self._resume_stuck(report)
        self._square_with_cloud(report)
        return report

    def _resume_stuck(self, report: ReconcileReport) -> None:
        now = self._clock.now()
        with self._sessions() as session:
            stuck = session.execute(
                select(Vm.id, Vm.name, Vm.status).where(
                    Vm.status.in_(TRANSITIONAL), Vm.updated_at < now - self._stuck_after
                )
            ).all()
        for vm_id, name, status in stuck:
            if self._locks.is_held(vm_key(vm_id)):
                continue  # a live worker is on it
            with self._sessions.begin() as session:
                resumes = (
                    session.scalar(
                        select(func.count(AuditLog.id)).where(
                            AuditLog.target == f"vm:{vm_id}", AuditLog.action == "vm.resume"
                        )
                    )
                    or 0
                )
                if resumes < MAX_RESUMES:
                    session.add(
                        AuditLog(
                            actor=RECONCILE,
                            action="vm.resume",
                            target=f"vm:{vm_id}",
                            details={"status": status.value},
                        )
                    )
                    row = session.get(Vm, vm_id)
                    if row is not None:
                        row.updated_at = now  # not stuck again until stuck_after from now
            if resumes >= MAX_RESUMES:
                reason = f"Stuck while {status.value} after {MAX_RESUMES} attempts to resume it"
                self.fail(vm_id, reason, actor=RECONCILE)
                self._notifier.admin_alert(
                    f"{name} was stuck {status.value}; reconcile gave up and marked it failed. "
                    "Check the instance in the cloud console and destroy it if it is there."
                )
                report.failed.append(vm_id)
                continue
            enqueue = {
                VmStatus.PROVISIONING: self._jobs.enqueue_provision,
                VmStatus.STOPPING: self._jobs.enqueue_stop,
                VmStatus.DESTROYING: self._jobs.enqueue_destroy,
            }[status]
            enqueue(vm_id)
            report.resumed.append(vm_id)

    def _square_with_cloud(self, report: ReconcileReport) -> None:
        instances = self._backend.list_managed()
        with self._sessions() as session:
            rows = {
                name: (vm_id, status)
                for vm_id, name, status in session.execute(select(Vm.id, Vm.name, Vm.status))
            }
            mine = session.execute(
                select(Vm.id, Vm.name, Vm.zone).where(
                    Vm.backend == self._backend.name,
                    Vm.status.in_([VmStatus.RUNNING, VmStatus.STOPPED]),
                )
            ).all()
        in_cloud = {i.name for i in instances}
        for instance in instances:
            known = rows.get(instance.name)
            if known is None:
                self._report_orphan(instance, "the database has no VM of that name", report)
            elif known[1] is VmStatus.DESTROYED:
                self._backend.delete(instance.name, instance.zone)
                self._audit("orphan.deleted", f"instance:{instance.name}", {"zone": instance.zone})
                report.orphans_deleted.append(instance.name)
            elif known[1] is VmStatus.FAILED:
                why = "its VM failed but the instance is still there"
                self._report_orphan(instance, why, report)
        for vm_id, name, zone in mine:
            if name in in_cloud or self._locks.is_held(vm_key(vm_id)):
                continue
            if self._backend.get(name, zone) is not None:
                continue
            try:
                self._move(
                    vm_id,
                    VmStatus.DESTROYING,
                    actor=RECONCILE,
                    only_from={VmStatus.RUNNING, VmStatus.STOPPED},
                    details={"reason": "gone from the cloud"},
                    status_detail="Gone from the cloud",
                )
                self._move(
                    vm_id,
                    VmStatus.DESTROYED,
                    actor=RECONCILE,
                    deleted_at=self._clock.now(),
                    ip=None,
                    status_detail="Gone from the cloud (deleted outside vmbot, or its max run "
                    "duration ran out)",
                )
            except IllegalTransition:
                continue
            report.vanished.append(vm_id)
            request_id = self._request_of(vm_id)
            if request_id is not None:
                self._notify(request_id, "destroyed", "gone from the cloud")

    def _report_orphan(self, instance: Instance, why: str, report: ReconcileReport) -> None:
        target = f"instance:{instance.name}"
        with self._sessions() as session:
            seen = session.scalar(
                select(func.count(AuditLog.id)).where(
                    AuditLog.target == target, AuditLog.action == "orphan.found"
                )
            )
        if seen:
            return  # told the admins once already
        self._audit("orphan.found", target, {"zone": instance.zone, "why": why})
        self._notifier.admin_alert(
            f"Orphaned instance {instance.name} in {instance.zone} is labelled managed-by=vmbot "
            f"but {why}. Delete it (gcloud compute instances delete {instance.name} "
            f"--zone {instance.zone}) or find out who made it."
        )
        report.orphans_reported.append(instance.name)

    def _audit(self, action: str, target: str, details: dict[str, Any]) -> None:
        with self._sessions.begin() as session:
            session.add(AuditLog(actor=RECONCILE, action=action, target=target, details=details))
