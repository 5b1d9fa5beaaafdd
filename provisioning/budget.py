"""Quotas and spend: what a user holds now and what they spent this month.

Spend is an estimate: the hours a VM ran in the current calendar month (UTC) times the hourly price
its spec was approved at. `month_to_date_spend` is the pure part; `usage_for` and `team_spend` read
the rows it needs.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from db.models import Vm, VmRequest, VmStatus
from provisioning.policy import Usage

# A VM in these states counts against the user's VM quota: it exists, or is about to.
HELD = frozenset(
    {
        VmStatus.QUEUED,
        VmStatus.PROVISIONING,
        VmStatus.RUNNING,
        VmStatus.STOPPING,
        VmStatus.STOPPED,
    }
)
# ...and in these against the vCPU quota: a stopped VM holds no vCPUs (GCE does not count them).
HOLDS_VCPUS = HELD - {VmStatus.STOPPED}
# Without a deletion time, a VM in these states stopped billing at its last update.
_ENDED = frozenset({VmStatus.STOPPED, VmStatus.DESTROYED, VmStatus.FAILED})


@dataclass(frozen=True)
class VmCost:
    usd_per_hour: float
    running_at: datetime | None  # None: it never ran
    ended_at: datetime | None = None  # deleted or stopped; None: still running


def month_start(now: datetime) -> datetime:
    """Midnight UTC on the first day of `now`'s month (UTC)."""
    return _utc(now).replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def next_month_start(now: datetime) -> datetime:
    start = month_start(now)
    if start.month == 12:
        return start.replace(year=start.year + 1, month=1)
    return start.replace(month=start.month + 1)


def hours_left_in_month(now: datetime) -> float:
    return (next_month_start(now) - _utc(now)).total_seconds() / 3600


def month_to_date_spend(vms: Iterable[VmCost], now: datetime) -> float:
    """USD spent from the start of `now`'s month (UTC) until `now`: hours running × price."""
    start, end = month_start(now), _utc(now)
    total = 0.0
    for vm in vms:
        if vm.running_at is None:
            continue
        ran_from = max(_utc(vm.running_at), start)
        ran_to = min(_utc(vm.ended_at), end) if vm.ended_at is not None else end
        if ran_to > ran_from:
            total += (ran_to - ran_from).total_seconds() / 3600 * vm.usd_per_hour
    return total


def usage_for(session: Session, user_id: int, now: datetime) -> Usage:
    """What the user (a `users.id`) holds now and spent this month, and the team's spend."""
    rows = session.execute(
        select(Vm, VmRequest.spec)
        .join(VmRequest, Vm.request_id == VmRequest.id)
        .where(VmRequest.requester_id == user_id)
        .where(or_(Vm.deleted_at.is_(None), Vm.deleted_at >= month_start(now)))
    ).all()
    held = [(vm, spec) for vm, spec in rows if vm.status in HELD]
    return Usage(
        running_vms=len(held),
        running_vcpus=sum(
            int(spec.get("vcpus", 0)) for vm, spec in held if vm.status in HOLDS_VCPUS
        ),
        month_spend_usd=month_to_date_spend((_cost(vm, spec) for vm, spec in rows), now),
        team_month_spend_usd=team_spend(session, now),
        hours_left_in_month=hours_left_in_month(now),
    )


def team_spend(session: Session, now: datetime) -> float:
    """Everyone's estimated spend this month (UTC)."""
    rows = session.execute(
        select(Vm, VmRequest.spec)
        .join(VmRequest, Vm.request_id == VmRequest.id)
        .where(Vm.running_at.is_not(None))
        .where(or_(Vm.deleted_at.is_(None), Vm.deleted_at >= month_start(now)))
    ).all()
    return month_to_date_spend((_cost(vm, spec) for vm, spec in rows), now)


def _cost(vm: Vm, spec: dict[str, Any]) -> VmCost:
    ended = vm.deleted_at
    if ended is None and vm.status in _ENDED:
        ended = vm.updated_at  # no stop time is stored; the last update is when it stopped
    return VmCost(float(spec["cost"]["usd_per_hour"]), vm.running_at, ended)


def _utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)
