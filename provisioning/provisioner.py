"""What the worker does with a VM row: provision, destroy, expire, and pick up lost work.

Every method takes ids, reloads rows, and returns early when the work is already done, so a
redelivered job or a second worker is harmless.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from db.models import Vm, VmStatus
from provisioning.errors import BackendError, IllegalTransition
from provisioning.ports import Clock, CloudBackend, InstanceRequest, JobQueue, Notifier
from provisioning.service import RequestService, ttl_delta
from provisioning.spec import VmSpec
from provisioning.states import move_vm

log = logging.getLogger(__name__)

WORKER = "worker"
# A queued VM whose job has not started by then was probably never enqueued (crash between
# commit and enqueue) or its message was lost; it is enqueued again.
STALE_QUEUED = timedelta(minutes=2)


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
    ) -> None:
        self._sessions = session_factory
        self._backend = backend
        self._notifier = notifier
        self._clock = clock
        self._requests = requests
        self._jobs = jobs

    def _notify(self, request_id: int, event: str, detail: str = "") -> None:
        self._notifier.request_changed(self._requests.get(request_id), event, detail)

    def provision(self, vm_id: int) -> None:
        with self._sessions.begin() as session:
            vm = session.get(Vm, vm_id)
            if vm is None:
                log.warning("provision_vm: no VM %s", vm_id)
                return
            if vm.status is not VmStatus.QUEUED:
                log.info("provision_vm: VM %s is %s already; nothing to do", vm_id, vm.status)
                return
            spec = VmSpec.model_validate(vm.request.spec)
            zone = vm.zone or spec.zone or f"{vm.region}-b"
            owner = vm.request.requester.slack_user_id
            request_id = vm.request_id
            try:
                move_vm(
                    session,
                    vm_id,
                    VmStatus.PROVISIONING,
                    actor=WORKER,
                    only_from={VmStatus.QUEUED},
                    zone=zone,
                    status_detail=f"Provisioning in {zone}",
                )
            except IllegalTransition:
                return  # another worker took it between our read and our write
        self._notify(request_id, "provisioning", zone)

        def progress(step: str) -> None:
            with self._sessions.begin() as session:
                vm = session.get(Vm, vm_id)
                if vm is not None:
                    vm.status_detail = step[:500]
            self._notify(request_id, "progress", step)

        try:
            instance = self._backend.create(
                InstanceRequest(
                    name=spec.name,
                    machine_type=spec.machine_type,
                    region=spec.region,
                    zone=zone,
                    os_image=spec.os_image,
                    disk_gb=spec.disk_gb,
                    disk_type=spec.disk_type,
                    gpu_type=spec.gpu.type if spec.gpu else None,
                    gpu_count=spec.gpu.count if spec.gpu else 0,
                    spot=spec.spot,
                    packages=spec.packages,
                    labels={
                        "managed-by": "vmbot",
                        "owner": owner.lower(),
                        "request": str(request_id),
                    },
                    max_run_hours=spec.ttl_hours,
                ),
                progress,
            )
        except BackendError as exc:
            self._fail(vm_id, request_id, str(exc))
            return
        now = self._clock.now()
        ttl = ttl_delta(spec)
        with self._sessions.begin() as session:
            move_vm(
                session,
                vm_id,
                VmStatus.RUNNING,
                actor=WORKER,
                only_from={VmStatus.PROVISIONING},
                details={"ip": instance.ip, "instance_id": instance.instance_id},
                ip=instance.ip,
                instance_id=instance.instance_id,
                zone=instance.zone,
                running_at=now,
                expires_at=now + ttl if ttl else None,
                status_detail="Running",
            )
        self._notify(request_id, "running")

    def _fail(self, vm_id: int, request_id: int, reason: str) -> None:
        with self._sessions.begin() as session:
            move_vm(
                session,
                vm_id,
                VmStatus.FAILED,
                actor=WORKER,
                details={"reason": reason[:500]},
                status_detail=reason[:500],
            )
        self._notify(request_id, "failed", reason)

    def destroy(self, vm_id: int, *, reason: str = "") -> None:
        with self._sessions.begin() as session:
            vm = session.get(Vm, vm_id)
            if vm is None or vm.status is VmStatus.DESTROYED:
                return
            name, zone, request_id = vm.name, vm.zone, vm.request_id
            if vm.status is not VmStatus.DESTROYING:
                try:
                    move_vm(
                        session,
                        vm_id,
                        VmStatus.DESTROYING,
                        actor=WORKER,
                        details={"reason": reason},
                        status_detail=reason or "Destroying",
                    )
                except IllegalTransition:
                    return
        self._notify(request_id, "destroying", reason)
        try:
            self._backend.delete(name, zone)
        except BackendError as exc:
            self._fail(vm_id, request_id, f"Destroy failed: {exc}")
            return
        with self._sessions.begin() as session:
            move_vm(
                session,
                vm_id,
                VmStatus.DESTROYED,
                actor=WORKER,
                deleted_at=self._clock.now(),
                status_detail="Destroyed",
            )
        self._notify(request_id, "destroyed", reason)

    def expire_due(self) -> list[int]:
        """Destroy every running or stopped VM whose time is over; returns their ids."""
        now = self._clock.now()
        with self._sessions() as session:
            due = list(
                session.scalars(
                    select(Vm.id).where(
                        Vm.status.in_([VmStatus.RUNNING, VmStatus.STOPPED]),
                        Vm.expires_at.is_not(None),
                        Vm.expires_at <= now,
                    )
                )
            )
        for vm_id in due:
            self.destroy(vm_id, reason="Expired: its time was up")
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
