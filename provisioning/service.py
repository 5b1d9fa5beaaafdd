"""Request use cases: suggest, approve, request approval, reject, cancel.

Entrypoints (Slack listeners, the CLI) call these with plain values and get `RequestView`s
back; they never see a session or an ORM object.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload, sessionmaker

from db.models import AuditLog, RequestStatus, Role, User, Vm, VmRequest, VmStatus
from provisioning.errors import AlreadyDecided, IllegalTransition, NotAllowed, NotFound
from provisioning.policy import PolicyConfig, Verdict, check_approval, evaluate
from provisioning.ports import Clock, JobQueue, Notifier
from provisioning.spec import VmSpec
from provisioning.states import move_request
from provisioning.views import RequestView, request_view

log = logging.getLogger(__name__)

OPEN = {RequestStatus.SUGGESTED, RequestStatus.PENDING_APPROVAL}


@dataclass(frozen=True)
class Actor:
    """Who is acting, as Slack's signed payload says; never taken from a button value."""

    team_id: str
    user_id: str

    @property
    def audit_name(self) -> str:
        return f"slack:{self.team_id}/{self.user_id}"


@dataclass(frozen=True)
class Directory:
    """How roles are assigned to people the bot has not seen before."""

    admins: frozenset[str]
    default_role: Role


class RequestService:
    def __init__(
        self,
        session_factory: sessionmaker[Session],
        *,
        jobs: JobQueue,
        notifier: Notifier,
        clock: Clock,
        policy: PolicyConfig,
        directory: Directory,
        backend_name: str,
        project: str | None = None,
    ) -> None:
        self._sessions = session_factory
        self._jobs = jobs
        self._notifier = notifier
        self._clock = clock
        self._policy = policy
        self._directory = directory
        self._backend_name = backend_name
        self._project = project

    # -- people --------------------------------------------------------------------------

    def _user(self, session: Session, actor: Actor) -> User:
        """The user row for this Slack identity, created on first sight (race-safe)."""
        role = (
            Role.ADMIN if actor.user_id in self._directory.admins else self._directory.default_role
        )
        values = {"slack_team_id": actor.team_id, "slack_user_id": actor.user_id, "role": role}
        dialect = session.get_bind().dialect.name
        insert = pg_insert if dialect == "postgresql" else sqlite_insert
        session.execute(
            insert(User)
            .values(**values)
            .on_conflict_do_nothing(index_elements=["slack_team_id", "slack_user_id"])
        )
        user = session.scalars(
            select(User).where(
                User.slack_team_id == actor.team_id, User.slack_user_id == actor.user_id
            )
        ).one()
        if actor.user_id in self._directory.admins and user.role is not Role.ADMIN:
            user.role = Role.ADMIN  # bootstrap admins stay admins whatever the table says
        return user

    def role_of(self, actor: Actor) -> Role:
        with self._sessions.begin() as session:
            return self._user(session, actor).role

    # -- reading -------------------------------------------------------------------------

    def _load(self, session: Session, request_id: int) -> VmRequest:
        req = session.scalars(
            select(VmRequest)
            .where(VmRequest.id == request_id)
            .options(
                selectinload(VmRequest.requester),
                selectinload(VmRequest.approver),
                selectinload(VmRequest.vms),
            )
            .execution_options(populate_existing=True)
        ).one_or_none()
        if req is None:
            raise NotFound(f"I can't find request #{request_id}. It may have been removed.")
        return req

    def get(self, request_id: int) -> RequestView:
        with self._sessions() as session:
            return request_view(self._load(session, request_id))

    def verdict_for(self, spec: VmSpec, actor: Actor) -> Verdict:
        return evaluate(spec, self.role_of(actor), self._policy)

    # -- use cases -----------------------------------------------------------------------

    def create_request(self, actor: Actor, text: str, spec: VmSpec) -> RequestView:
        with self._sessions.begin() as session:
            user = self._user(session, actor)
            if user.role is Role.VIEWER:
                raise NotAllowed("Viewers cannot request VMs. Ask an admin for the requester role.")
            verdict = evaluate(spec, user.role, self._policy)
            req = VmRequest(
                requester=user,
                original_text=text[:4000],
                spec=spec.model_dump(mode="json"),
                source=spec.source,
                status=RequestStatus.SUGGESTED,
                policy_decision=verdict.decision,
                policy_reason=verdict.reason,
            )
            session.add(req)
            session.flush()
            session.add(
                AuditLog(
                    actor=actor.audit_name,
                    action="request.suggested",
                    target=f"request:{req.id}",
                    details={"spec": req.spec, "verdict": verdict.decision},
                )
            )
            request_id = req.id
        return self.get(request_id)

    def attach_card(self, request_id: int, channel: str, ts: str) -> RequestView:
        """Remember where the card lives, so the worker can update it and reply in its thread."""
        with self._sessions.begin() as session:
            req = self._load(session, request_id)
            req.slack_channel, req.thread_ts, req.message_ts = channel, ts, ts
        return self.get(request_id)

    def attach_admin_card(self, request_id: int, channel: str, ts: str) -> RequestView:
        """Remember the admin channel's copy of the card, so every copy is kept current."""
        with self._sessions.begin() as session:
            req = self._load(session, request_id)
            req.admin_channel, req.admin_message_ts = channel, ts
        return self.get(request_id)

    def approve(self, request_id: int, actor: Actor) -> RequestView:
        """Approve and enqueue provisioning. Exactly one of many concurrent approvals wins;
        the rest raise AlreadyDecided naming who decided."""
        try:
            with self._sessions.begin() as session:
                req = self._load(session, request_id)
                self._ensure_open(req)
                approver = self._user(session, actor)
                # Policy is evaluated again here, authoritatively, with the requester's role now.
                verdict = evaluate(
                    VmSpec.model_validate(req.spec), req.requester.role, self._policy
                )
                check_approval(
                    verdict,
                    actor_role=approver.role,
                    actor_is_requester=approver.id == req.requester_id,
                )
                now = self._clock.now()
                move_request(
                    session,
                    req.id,
                    RequestStatus.APPROVED,
                    actor=actor.audit_name,
                    only_from=OPEN,
                    details={"verdict": verdict.decision},
                    approver_id=approver.id,
                    decided_at=now,
                    policy_decision=verdict.decision,
                    policy_reason=verdict.reason,
                )
                spec = VmSpec.model_validate(req.spec)
                vm = Vm(
                    request_id=req.id,
                    name=spec.name,
                    backend=self._backend_name,
                    project=self._project,
                    region=spec.region,
                    zone=spec.zone,
                    status=VmStatus.QUEUED,
                    status_detail="Queued",
                )
                session.add(vm)
                session.flush()
                vm_id = vm.id
        except (IllegalTransition, IntegrityError):
            # Lost a race with another click: report what actually happened.
            with self._sessions() as session:
                self._ensure_open(self._load(session, request_id))
            raise
        view = self.get(request_id)
        self._notifier.request_changed(view, "queued")
        self._jobs.enqueue_provision(vm_id)
        return view

    def request_approval(self, request_id: int, actor: Actor) -> RequestView:
        with self._sessions.begin() as session:
            req = self._load(session, request_id)
            self._ensure_open(req)
            user = self._user(session, actor)
            if user.id != req.requester_id:
                raise NotAllowed("Only the requester can ask for approval of this request.")
            move_request(
                session,
                req.id,
                RequestStatus.PENDING_APPROVAL,
                actor=actor.audit_name,
                only_from={RequestStatus.SUGGESTED},
            )
        view = self.get(request_id)
        self._notifier.request_changed(view, "pending_approval")
        return view

    def reject(self, request_id: int, actor: Actor, reason: str = "") -> RequestView:
        with self._sessions.begin() as session:
            req = self._load(session, request_id)
            self._ensure_open(req)
            user = self._user(session, actor)
            if user.role.rank < Role.APPROVER.rank:
                raise NotAllowed("Only approvers can reject requests.")
            move_request(
                session,
                req.id,
                RequestStatus.REJECTED,
                actor=actor.audit_name,
                only_from=OPEN,
                details={"reason": reason[:500]},
                approver_id=user.id,
                decided_at=self._clock.now(),
            )
        view = self.get(request_id)
        self._notifier.request_changed(view, "rejected")
        return view

    def cancel(self, request_id: int, actor: Actor) -> RequestView:
        with self._sessions.begin() as session:
            req = self._load(session, request_id)
            self._ensure_open(req)
            user = self._user(session, actor)
            if user.id != req.requester_id and user.role.rank < Role.APPROVER.rank:
                raise NotAllowed("Only the requester or an approver can cancel this request.")
            move_request(
                session,
                req.id,
                RequestStatus.CANCELLED,
                actor=actor.audit_name,
                only_from=OPEN,
                decided_at=self._clock.now(),
            )
        view = self.get(request_id)
        self._notifier.request_changed(view, "cancelled")
        return view

    def revise(self, request_id: int, actor: Actor, text: str, spec: VmSpec) -> RequestView:
        """Replace a suggested request's spec; an approved request is never changed."""
        with self._sessions.begin() as session:
            req = self._load(session, request_id)
            user = self._user(session, actor)
            if user.id != req.requester_id:
                raise NotAllowed("Only the requester can change this request.")
            if req.status is not RequestStatus.SUGGESTED:
                raise AlreadyDecided(
                    f"This request is {req.status.value} and can no longer be changed; "
                    "ask again with /vm for a new one."
                )
            # The name stays: it is how people refer to the VM in the thread.
            spec = spec.model_copy(update={"name": VmSpec.model_validate(req.spec).name})
            verdict = evaluate(spec, user.role, self._policy)
            move_request(
                session,
                req.id,
                RequestStatus.SUGGESTED,
                actor=actor.audit_name,
                only_from={RequestStatus.SUGGESTED},
                details={"spec": spec.model_dump(mode="json")},
                spec=spec.model_dump(mode="json"),
                original_text=text[:4000],
                source=spec.source,
                policy_decision=verdict.decision,
                policy_reason=verdict.reason,
            )
        view = self.get(request_id)
        self._notifier.request_changed(view, None)
        return view

    def list_vms(self, actor: Actor) -> list[RequestView]:
        """The actor's requests that have a VM, newest first (all of them for admins)."""
        with self._sessions.begin() as session:
            user = self._user(session, actor)
            query = (
                select(VmRequest)
                .join(Vm, Vm.request_id == VmRequest.id)
                .options(
                    selectinload(VmRequest.requester),
                    selectinload(VmRequest.approver),
                    selectinload(VmRequest.vms),
                )
                .order_by(VmRequest.id.desc())
                .limit(200)
            )
            if user.role is not Role.ADMIN:
                query = query.where(VmRequest.requester_id == user.id)
            return [request_view(req) for req in session.scalars(query)]

    @staticmethod
    def _ensure_open(req: VmRequest) -> None:
        if req.status in OPEN:
            return
        who = f" by <@{req.approver.slack_user_id}>" if req.approver else ""
        raise AlreadyDecided(f"This request was already {req.status.value}{who}.")


def ttl_delta(spec: VmSpec) -> timedelta | None:
    return timedelta(hours=spec.ttl_hours) if spec.ttl_hours else None
