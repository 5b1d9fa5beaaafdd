"""What people do with VMs once they exist: look, list, extend, stop, start, destroy, audit.

Each action checks the role on the server, audits who asked in the same transaction, and
enqueues cloud work only after the commit.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload, sessionmaker

from db.models import AuditLog, Role, User, Vm, VmRequest, VmStatus
from provisioning.errors import IllegalTransition, NotAllowed, NotFound
from provisioning.people import Actor, Directory, ensure_user
from provisioning.policy import PolicyConfig
from provisioning.ports import Clock, JobQueue, Notifier
from provisioning.views import RequestView, request_view, requests_query

LIVE = (VmStatus.QUEUED, VmStatus.PROVISIONING, VmStatus.RUNNING, VmStatus.STOPPING,
        VmStatus.STOPPED, VmStatus.FAILED)  # fmt: skip


@dataclass(frozen=True)
class AuditEntry:
    at: datetime
    actor: str
    action: str
    target: str
    details: dict


class VmService:
    def __init__(
        self,
        session_factory: sessionmaker[Session],
        *,
        jobs: JobQueue,
        notifier: Notifier,
        clock: Clock,
        directory: Directory,
        policy: Callable[[], PolicyConfig],
    ) -> None:
        self._sessions = session_factory
        self._jobs = jobs
        self._notifier = notifier
        self._clock = clock
        self._directory = directory
        self._policy = policy

    def now(self) -> datetime:
        return self._clock.now()

    # -- finding ---------------------------------------------------------------------------

    def _vm(self, session: Session, name: str) -> Vm:
        vm = session.scalars(
            select(Vm)
            .where(Vm.name == name)
            .options(selectinload(Vm.request).selectinload(VmRequest.requester))
        ).one_or_none()
        if vm is None:
            raise NotFound(f"I don't know a VM called `{name}`. `/vm list` shows yours.")
        return vm

    def _mine_or(self, me: User, vm: Vm, role: Role, verb: str) -> None:
        if vm.request.requester_id == me.id and me.role is not Role.VIEWER:
            return
        if me.role.rank >= role.rank:
            return
        who = "its owner or an admin" if role is Role.ADMIN else "its owner or an approver"
        raise NotAllowed(f"Only {who} can {verb} `{vm.name}`.")

    def _view(self, session: Session, request_id: int) -> RequestView:
        return request_view(
            session.scalars(requests_query().where(VmRequest.id == request_id)).one()
        )

    def status(self, actor: Actor, name: str) -> RequestView:
        with self._sessions.begin() as session:
            me = ensure_user(session, actor, self._directory)
            vm = self._vm(session, name)
            self._mine_or(me, vm, Role.APPROVER, "look at")
            return self._view(session, vm.request_id)

    def list_vms(self, actor: Actor, *, everyone: bool = False) -> list[RequestView]:
        """The actor's VMs that still exist, newest first; everyone's for admins who ask."""
        with self._sessions.begin() as session:
            me = ensure_user(session, actor, self._directory)
            if everyone and me.role is not Role.ADMIN:
                raise NotAllowed("Only admins can list everyone's VMs; `/vm list` shows yours.")
            query = (
                requests_query()
                .join(Vm, Vm.request_id == VmRequest.id)
                .where(Vm.status.in_(LIVE))
                .order_by(VmRequest.id.desc())
                .limit(200)
            )
            if not everyone:
                query = query.where(VmRequest.requester_id == me.id)
            return [request_view(req) for req in session.scalars(query)]

    # -- acting ----------------------------------------------------------------------------

    def _destroyable(self, session: Session, actor: Actor, name: str) -> Vm:
        me = ensure_user(session, actor, self._directory)
        vm = self._vm(session, name)
        self._mine_or(me, vm, Role.ADMIN, "destroy")
        if vm.status in (VmStatus.DESTROYING, VmStatus.DESTROYED):
            raise IllegalTransition(f"`{name}` is {vm.status.value} already.")
        if vm.status is VmStatus.PROVISIONING:
            raise IllegalTransition(
                f"`{name}` is still being created; destroy it once it is running."
            )
        return vm

    def check_can_destroy(self, actor: Actor, name: str) -> None:
        """Raise the error `destroy` would raise, without doing anything (for confirmations)."""
        with self._sessions.begin() as session:
            self._destroyable(session, actor, name)

    def destroy(self, actor: Actor, name: str) -> RequestView:
        with self._sessions.begin() as session:
            vm = self._destroyable(session, actor, name)
            session.add(_audit(actor, "vm.destroy_requested", vm))
            vm_id, request_id = vm.id, vm.request_id
        self._jobs.enqueue_destroy(vm_id)
        with self._sessions() as session:
            return self._view(session, request_id)

    def stop(self, actor: Actor, name: str) -> RequestView:
        return self._power(actor, name, "stop", VmStatus.RUNNING)

    def start(self, actor: Actor, name: str) -> RequestView:
        return self._power(actor, name, "start", VmStatus.STOPPED)

    def _power(self, actor: Actor, name: str, verb: str, needs: VmStatus) -> RequestView:
        with self._sessions.begin() as session:
            me = ensure_user(session, actor, self._directory)
            vm = self._vm(session, name)
            self._mine_or(me, vm, Role.ADMIN, verb)
            if vm.status is not needs:
                raise IllegalTransition(
                    f"`{name}` is {vm.status.value}; only a {needs.value} VM can be {verb}ped."
                    if verb == "stop"
                    else f"`{name}` is {vm.status.value}; only a stopped VM can be started."
                )
            session.add(_audit(actor, f"vm.{verb}_requested", vm))
            vm_id, request_id = vm.id, vm.request_id
        if verb == "stop":
            self._jobs.enqueue_stop(vm_id)
        else:
            self._jobs.enqueue_start(vm_id)
        with self._sessions() as session:
            return self._view(session, request_id)

    def extend(self, actor: Actor, name: str, hours: float) -> RequestView:
        """Push the expiry back by `hours`, within the owner's role limit on a VM's lifetime."""
        now = self._clock.now()
        with self._sessions.begin() as session:
            me = ensure_user(session, actor, self._directory)
            vm = self._vm(session, name)
            self._mine_or(me, vm, Role.ADMIN, "extend")
            if vm.status not in (VmStatus.RUNNING, VmStatus.STOPPED):
                raise IllegalTransition(f"`{name}` is {vm.status.value}; it cannot be extended.")
            if vm.expires_at is None:
                raise IllegalTransition(f"`{name}` has no expiry, so there is nothing to extend.")
            base = max(vm.expires_at, now)
            new_expiry = base + timedelta(hours=hours)
            owner_role = vm.request.requester.role
            limit = self._policy().limits[owner_role].max_ttl_hours
            started = vm.running_at or vm.created_at
            lifetime = (new_expiry - started).total_seconds() / 3600
            # Admins included: Compute Engine deletes the VM at this lifetime in any case
            # (its max_run_duration backstop is set from the same limit).
            if lifetime > limit:
                room = max(0.0, limit - (base - started).total_seconds() / 3600)
                raise NotAllowed(
                    f"That would keep `{name}` for {lifetime:.1f} h in all; the limit for its "
                    f"owner is {limit:g} h, so it can be extended by at most {room:.1f} h. "
                    "For longer, ask for a new VM."
                )
            before = vm.expires_at
            vm.expires_at = new_expiry
            session.add(
                _audit(
                    actor,
                    "vm.extended",
                    vm,
                    {
                        "from": before.isoformat() if before else None,
                        "to": new_expiry.isoformat(),
                        "hours": hours,
                    },
                )
            )
            request_id = vm.request_id
        with self._sessions() as session:
            view = self._view(session, request_id)
        self._notifier.request_changed(view, "extended", f"{hours:g} h")
        return view

    # -- history ---------------------------------------------------------------------------

    def history(self, actor: Actor, name: str) -> list[AuditEntry]:
        with self._sessions.begin() as session:
            me = ensure_user(session, actor, self._directory)
            vm = self._vm(session, name)
            self._mine_or(me, vm, Role.APPROVER, "see the history of")
            rows = session.scalars(
                select(AuditLog)
                .where(AuditLog.target.in_([f"vm:{vm.id}", f"request:{vm.request_id}"]))
                .order_by(AuditLog.id)
            ).all()
            return [_entry(row) for row in rows]

    def export_audit(self, actor: Actor, *, limit: int = 100_000) -> str:
        """The whole audit log as CSV, oldest first (admins only)."""
        with self._sessions.begin() as session:
            me = ensure_user(session, actor, self._directory)
            if me.role is not Role.ADMIN:
                raise NotAllowed("Only admins can export the audit log.")
            rows = session.scalars(select(AuditLog).order_by(AuditLog.id).limit(limit)).all()
            out = io.StringIO()
            writer = csv.writer(out)
            writer.writerow(["at", "actor", "action", "target", "details"])
            for row in rows:
                writer.writerow(
                    [row.at.isoformat(), row.actor, row.action, row.target, _json(row.details)]
                )
            session.add(
                AuditLog(
                    actor=actor.audit_name,
                    action="audit.exported",
                    target="audit_log",
                    details={"rows": len(rows)},
                )
            )
            return out.getvalue()


def _json(details: dict) -> str:
    return json.dumps(details, sort_keys=True, default=str)


def _audit(actor: Actor, action: str, vm: Vm, details: dict | None = None) -> AuditLog:
    return AuditLog(
        actor=actor.audit_name,
        action=action,
        target=f"vm:{vm.id}",
        details={"name": vm.name, **(details or {})},
    )


def _entry(row: AuditLog) -> AuditEntry:
    return AuditEntry(
        at=row.at,
        actor=row.actor,
        action=row.action,
        target=row.target,
        details=dict(row.details or {}),
    )
