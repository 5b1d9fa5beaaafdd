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


def _move(
    session: Session,
    model: type[VmRequest] | type[Vm],
    kind: str,
    table: dict[Any, frozenset[Any]],
    row_id: int,
    to: Any,
    *,
    actor: str,
    only_from: set[Any] | None,
    details: dict[str, Any] | None,
    values: dict[str, Any],
) -> None:
    allowed = sources_of(table, to)
    if only_from is not None:
        allowed &= only_from
    result = session.execute(
        update(model)
        .where(model.id == row_id, model.status.in_(allowed))
        .values(status=to, updated_at=utcnow(), **values)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        current = session.scalar(select(model.status).where(model.id == row_id))
        label = "request" if kind == "request" else "VM"
        raise IllegalTransition(f"{label} {row_id} is {current}, it cannot become {to}")
    session.add(
        AuditLog(
            actor=actor,
            action=f"{kind}.{to.value}",
            target=f"{kind}:{row_id}",
            details=details or {},
        )
    )


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
    _move(session, VmRequest, "request", REQUEST_TRANSITIONS, request_id, to, actor=actor,
          only_from=only_from, details=details, values=values)  # fmt: skip


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
    _move(session, Vm, "vm", VM_TRANSITIONS, vm_id, to, actor=actor,
          only_from=only_from, details=details, values=values)  # fmt: skip
