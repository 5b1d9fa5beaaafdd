"""The request and VM state machines, and the one function each that moves them.

Every move is a conditional UPDATE (`... WHERE status IN (legal sources)`), so two racing
actors cannot both win, and it writes its audit row in the same transaction.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from db.models import AuditLog, RequestStatus, Vm, VmRequest, VmStatus, utcnow
from provisioning.errors import IllegalTransition

R = RequestStatus
V = VmStatus

REQUEST_TRANSITIONS: dict[RequestStatus, frozenset[RequestStatus]] = {
    R.SUGGESTED: frozenset({R.SUGGESTED, R.PENDING_APPROVAL, R.APPROVED, R.CANCELLED, R.EXPIRED}),
    R.PENDING_APPROVAL: frozenset({R.APPROVED, R.REJECTED, R.CANCELLED, R.EXPIRED}),
    R.APPROVED: frozenset(),
    R.REJECTED: frozenset(),
    R.CANCELLED: frozenset(),
    R.EXPIRED: frozenset(),
}

VM_TRANSITIONS: dict[VmStatus, frozenset[VmStatus]] = {
    V.QUEUED: frozenset({V.PROVISIONING, V.DESTROYING, V.FAILED}),
    V.PROVISIONING: frozenset({V.PROVISIONING, V.RUNNING, V.DESTROYING, V.FAILED}),
    V.RUNNING: frozenset({V.STOPPING, V.DESTROYING, V.FAILED}),
    V.STOPPING: frozenset({V.STOPPED, V.DESTROYING, V.FAILED}),
    V.STOPPED: frozenset({V.PROVISIONING, V.DESTROYING}),
    V.DESTROYING: frozenset({V.DESTROYED, V.FAILED}),
    V.DESTROYED: frozenset(),
    V.FAILED: frozenset({V.DESTROYING, V.DESTROYED}),
}

TERMINAL_VM_STATES = frozenset(s for s, targets in VM_TRANSITIONS.items() if not targets)


def sources_of(table: dict[Any, frozenset[Any]], target: Any) -> set[Any]:
    return {src for src, targets in table.items() if target in targets}


def move_request(
    session: Session,
    request_id: int,
    to: RequestStatus,
    *,
    actor: str,
    only_from: set[RequestStatus] | None = None,
    details: dict[str, Any] | None = None,
    **values: Any,
) -> None:
    """Move a request to `to`, or raise IllegalTransition naming the state it is really in.

    Guarantees: at most one of any number of concurrent callers succeeds for a given source
    state; the audit row is written in the caller's transaction (nothing is committed here).
    """
    allowed = sources_of(REQUEST_TRANSITIONS, to)
    if only_from is not None:
        allowed &= only_from
    result = session.execute(
        update(VmRequest)
        .where(VmRequest.id == request_id, VmRequest.status.in_(allowed))
        .values(status=to, updated_at=utcnow(), **values)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        current = session.scalar(select(VmRequest.status).where(VmRequest.id == request_id))
        raise IllegalTransition(f"request {request_id} is {current}, it cannot become {to}")
    session.add(
        AuditLog(
            actor=actor,
            action=f"request.{to.value}",
            target=f"request:{request_id}",
            details=details or {},
        )
    )


def move_vm(
    session: Session,
    vm_id: int,
    to: VmStatus,
    *,
    actor: str,
    only_from: set[VmStatus] | None = None,
    details: dict[str, Any] | None = None,
    **values: Any,
) -> None:
    """Move a VM to `to`; same guarantees as `move_request`."""
    allowed = sources_of(VM_TRANSITIONS, to)
    if only_from is not None:
        allowed &= only_from
    result = session.execute(
        update(Vm)
        .where(Vm.id == vm_id, Vm.status.in_(allowed))
        .values(status=to, updated_at=utcnow(), **values)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        current = session.scalar(select(Vm.status).where(Vm.id == vm_id))
        raise IllegalTransition(f"VM {vm_id} is {current}, it cannot become {to}")
    session.add(
        AuditLog(
            actor=actor,
            action=f"vm.{to.value}",
            target=f"vm:{vm_id}",
            details=details or {},
        )
    )
