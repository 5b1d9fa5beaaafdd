"""Month-to-date spend (pure) and the usage query, on SQLite and PostgreSQL."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy.orm import Session

from db.engine import make_engine, make_session_factory
from db.models import RequestStatus, Role, User, Vm, VmRequest, VmStatus
from provisioning.budget import VmCost, hours_left_in_month, month_to_date_spend, usage_for
from provisioning.budget import team_spend as team_spend_of
from provisioning.policy import Usage
from provisioning.spec import Cost, VmSpec
from tests.conftest import unique

NOW = datetime(2024, 3, 15, 12, 0, tzinfo=UTC)


def at(day: int, hour: int = 0, month: int = 3, year: int = 2024) -> datetime:
    return datetime(year, month, day, hour, tzinfo=UTC)


@pytest.mark.parametrize(
    ("vms", "now", "spend"),
    [
        pytest.param([], NOW, 0.0, id="nothing"),
        pytest.param([VmCost(0.5, None)], NOW, 0.0, id="never ran"),
        pytest.param([VmCost(0.5, at(15, 2))], NOW, 5.0, id="still running: 10 h"),
        pytest.param([VmCost(0.5, at(10), at(10, 8))], NOW, 4.0, id="stopped after 8 h"),
        pytest.param(
            [VmCost(0.5, at(28, 12, month=2))],
            NOW,
            174.0,
            id="started last month: counted from the 1st, 348 h",
        ),
        pytest.param(
            [VmCost(0.5, at(27, month=2), at(2))], NOW, 12.0, id="ended on the 2nd: 24 h this month"
        ),
        pytest.param([VmCost(0.5, at(1, month=2), at(20, month=2))], NOW, 0.0, id="last month"),
        pytest.param([VmCost(0.5, at(16))], NOW, 0.0, id="starts after now"),
        pytest.param([VmCost(0.5, at(15, 10), at(16))], NOW, 1.0, id="ends after now: up to now"),
        pytest.param(
            [VmCost(0.5, datetime(2024, 3, 1, 1, tzinfo=timezone(timedelta(hours=2))))],
            NOW,
            174.0,
            id="month boundary in UTC, not local time",
        ),
        pytest.param(
            [VmCost(0.25, at(31, 12, month=12, year=2023))],
            datetime(2024, 1, 1, 6, tzinfo=UTC),
            1.5,
            id="new year",
        ),
        pytest.param(
            [VmCost(0.5, at(15, 2)), VmCost(1.0, at(10), at(10, 8)), VmCost(2.0, None)],
            NOW,
            13.0,
            id="several add up",
        ),
    ],
)
def test_month_to_date_spend(vms: list[VmCost], now: datetime, spend: float) -> None:
    assert month_to_date_spend(vms, now) == pytest.approx(spend)


@pytest.mark.parametrize(
    ("now", "hours"),
    [
        (NOW, 396.0),
        (datetime(2024, 12, 31, 18, tzinfo=UTC), 6.0),
        (datetime(2024, 2, 1, tzinfo=UTC), 29 * 24.0),
    ],
)
def test_hours_left_in_month(now: datetime, hours: float) -> None:
    assert hours_left_in_month(now) == hours


# -- the query -------------------------------------------------------------------------------


@pytest.fixture
def session(db_url: str) -> Iterator[Session]:
    engine = make_engine(db_url)
    with make_session_factory(engine)() as session:
        yield session
    engine.dispose()


def user(session: Session) -> User:
    row = User(slack_team_id="T1", slack_user_id=unique("U"), role=Role.REQUESTER)
    session.add(row)
    session.flush()
    return row


def vm(
    session: Session,
    owner: User,
    *,
    vcpus: int,
    usd_per_hour: float,
    status: VmStatus,
    running_at: datetime | None = None,
    deleted_at: datetime | None = None,
    updated_at: datetime = NOW,
) -> None:
    name = f"dev-{unique('').lower()}"
    spec = VmSpec(
        name=name,
        machine_type="e2-standard-2",
        vcpus=vcpus,
        memory_gb=8,
        os_image="ubuntu-2204-lts",
        disk_gb=30,
        region="us-central1",
        ttl_hours=None,
        cost=Cost(usd_per_hour=usd_per_hour),
    )
    request = VmRequest(
        requester_id=owner.id, spec=spec.model_dump(mode="json"), status=RequestStatus.APPROVED
    )
    session.add(request)
    session.flush()
    session.add(
        Vm(
            request_id=request.id,
            name=name,
            backend="local",
            region="us-central1",
            status=status,
            running_at=running_at,
            deleted_at=deleted_at,
            updated_at=updated_at,
        )
    )
    session.flush()


def test_usage_for_counts_held_vms_and_spend(session: Session) -> None:
    team_before = team_spend_of(session, NOW)
    me, other = user(session), user(session)
    vm(session, me, vcpus=4, usd_per_hour=0.5, status=VmStatus.RUNNING, running_at=at(15, 2))
    vm(
        session,
        me,
        vcpus=2,
        usd_per_hour=0.2,
        status=VmStatus.STOPPED,
        running_at=at(1),
        updated_at=at(1, 10),  # stopped then: 10 h
    )
    vm(
        session,
        me,
        vcpus=16,
        usd_per_hour=1.0,
        status=VmStatus.DESTROYED,
        running_at=at(14),
        deleted_at=at(14, 4),
    )
    vm(
        session,
        me,
        vcpus=16,
        usd_per_hour=1.0,
        status=VmStatus.DESTROYED,
        running_at=at(1, month=2),
        deleted_at=at(2, month=2),
    )
    vm(session, me, vcpus=8, usd_per_hour=0.3, status=VmStatus.QUEUED)
    vm(session, me, vcpus=8, usd_per_hour=0.3, status=VmStatus.FAILED)
    vm(session, other, vcpus=2, usd_per_hour=1.0, status=VmStatus.RUNNING, running_at=at(15, 10))
    session.commit()

    assert rounded(usage_for(session, me.id, NOW)) == Usage(
        running_vms=3,  # running, stopped, queued
        running_vcpus=12,  # running and queued; a stopped VM holds none
        month_spend_usd=5.0 + 2.0 + 4.0,
        team_month_spend_usd=round(team_before + 11.0 + 2.0, 6),
        hours_left_in_month=396.0,
    )
    assert usage_for(session, other.id, NOW).running_vms == 1
    assert rounded(usage_for(session, user(session).id, NOW)) == Usage(
        team_month_spend_usd=round(team_before + 13.0, 6), hours_left_in_month=396.0
    )


def rounded(usage: Usage) -> Usage:
    return dataclasses.replace(
        usage,
        month_spend_usd=round(usage.month_spend_usd, 6),
        team_month_spend_usd=round(usage.team_month_spend_usd, 6),
    )
