"""Plain, immutable snapshots of requests and VMs, for renderers and notifiers.

ORM objects never leave the service layer; these do.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Select, select
from sqlalchemy.orm import selectinload

from db.models import RequestStatus, Vm, VmRequest, VmStatus
from provisioning.spec import VmSpec


@dataclass(frozen=True)
class VmView:
    id: int
    name: str
    status: VmStatus
    region: str
    zone: str | None
    ip: str | None
    detail: str
    expires_at: datetime | None
    running_at: datetime | None


@dataclass(frozen=True)
class RequestView:
    id: int
    status: RequestStatus
    spec: VmSpec
    requester: str  # Slack user id
    requester_team: str
    original_text: str
    policy_decision: str  # allow | needs_approval | deny
    policy_reason: str
    policy_headroom: str  # what the requester has left, as the policy saw it
    approver: str | None
    decided_at: datetime | None
    channel: str | None
    thread_ts: str | None
    message_ts: str | None
    admin_channel: str | None
    admin_message_ts: str | None
    vm: VmView | None

    @property
    def is_open(self) -> bool:
        return self.status in (RequestStatus.SUGGESTED, RequestStatus.PENDING_APPROVAL)


def requests_query() -> Select[VmRequest]:
    """Requests with everything a RequestView needs, fresh from the database."""
    return (
        select(VmRequest)
        .options(
            selectinload(VmRequest.requester),
            selectinload(VmRequest.approver),
            selectinload(VmRequest.vms),
        )
        .execution_options(populate_existing=True)
    )


def vm_view(vm: Vm) -> VmView:
    return VmView(
        id=vm.id,
        name=vm.name,
        status=vm.status,
        region=vm.region,
        zone=vm.zone,
        ip=vm.ip,
        detail=vm.status_detail,
        expires_at=vm.expires_at,
        running_at=vm.running_at,
    )


def request_view(req: VmRequest) -> RequestView:
    return RequestView(
        id=req.id,
        status=req.status,
        spec=VmSpec.model_validate(req.spec),
        requester=req.requester.slack_user_id,
        requester_team=req.requester.slack_team_id,
        original_text=req.original_text,
        policy_decision=req.policy_decision,
        policy_reason=req.policy_reason,
        policy_headroom=req.policy_headroom,
        approver=req.approver.slack_user_id if req.approver else None,
        decided_at=req.decided_at,
        channel=req.slack_channel,
        thread_ts=req.thread_ts,
        message_ts=req.message_ts,
        admin_channel=req.admin_channel,
        admin_message_ts=req.admin_message_ts,
        vm=vm_view(req.vms[0]) if req.vms else None,
    )
