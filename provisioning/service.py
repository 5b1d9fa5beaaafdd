"""Request use cases: suggest, approve, request approval, reject, cancel.

Entrypoints (Slack listeners, the CLI) call these with plain values and get `RequestView`s
back; they never see a session or an ORM object.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from db.models import AuditLog, RequestStatus, Role, User, Vm, VmRequest, VmStatus
from provisioning.budget import usage_for
from provisioning.catalog import default_catalog
from provisioning.errors import AlreadyDecided, IllegalTransition, NotAllowed, NotFound
from provisioning.people import Actor, Directory, ensure_user
from provisioning.policy import PolicyConfig, Verdict, check_approval, evaluate
from provisioning.ports import Clock, JobQueue, Notifier
from provisioning.spec import VmSpec
from provisioning.states import move_request
from provisioning.views import RequestView, request_view, requests_query

log = logging.getLogger(__name__)

OPEN = {RequestStatus.SUGGESTED, RequestStatus.PENDING_APPROVAL}


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
        return ensure_user(session, actor, self._directory)

    def role_of(self, actor: Actor) -> Role:
        with self._sessions.begin() as session:
            return self._user(session, actor).role

    # -- reading -------------------------------------------------------------------------

    def _load(self, session: Session, request_id: int, *, lock: bool = False) -> VmRequest:
        if lock:  # row lock until the transaction ends (PostgreSQL; SQLite locks the file)
            session.execute(
                select(VmRequest.id).where(VmRequest.id == request_id).with_for_update()
            )
        req = session.scalars(requests_query().where(VmRequest.id == request_id)).one_or_none()
        if req is None:
            raise NotFound(f"I can't find request #{request_id}. It may have been removed.")
        return req

    def get(self, request_id: int) -> RequestView:
        with self._sessions() as session:
            return request_view(self._load(session, request_id))

    def _verdict(
        self, session: Session, spec: VmSpec, requester: User, channel: str | None
    ) -> Verdict:
        """The policy verdict for this requester now: their role, VMs, vCPUs and spend."""
        usage = usage_for(session, requester.id, self._clock.now())
        return evaluate(
            spec,
            requester.role,
            self._policy,
            usage=usage,
            channel=channel,
            catalog=default_catalog(),
        )

    # -- use cases -----------------------------------------------------------------------

    def create_request(
        self, actor: Actor, text: str, spec: VmSpec, *, channel: str | None = None
    ) -> RequestView:
        with self._sessions.begin() as session:
            user = self._user(session, actor)
            if user.role is Role.VIEWER:
                raise NotAllowed("Viewers cannot request VMs. Ask an admin for the requester role.")
            verdict = self._verdict(session, spec, user, channel)
            req = VmRequest(
                slack_channel=channel,
                policy_headroom=verdict.headroom,
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
        if verdict.decision == "deny":
            self._notifier.admin_alert(
                f"<@{actor.user_id}> asked for {spec.name} ({spec.machine_type}, "
                f"${spec.cost.usd_per_hour:.2f}/h) beyond policy: {verdict.reason}"
            )
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
        denied = ""
        try:
            with self._sessions.begin() as session:
                # Locked: a revision cannot slip in between the policy check and the approval,
                # and the requester's other approvals wait, so quotas are counted one at a time.
                req = self._load(session, request_id, lock=True)
                self._ensure_open(req)
                session.execute(
                    select(User.id).where(User.id == req.requester_id).with_for_update()
                )
                approver = self._user(session, actor)
                # Policy is evaluated again here, authoritatively: the requester's role, VMs and
                # spend as they are now, not as they were when the card was drawn.
                verdict = self._verdict(
                    session, VmSpec.model_validate(req.spec), req.requester, req.slack_channel
                )
                denied = verdict.reason if verdict.decision == "deny" else ""
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
                    policy_headroom=verdict.headroom,
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
        except NotAllowed:
            if denied:
                self._notifier.admin_alert(
                    f"<@{actor.user_id}> tried to approve request #{request_id}, "
                    f"which policy denies now: {denied}"
                )
            raise
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
        """Send the request to the approvers. Pressing it again is harmless: it says the
        request is with them, or, if the admin card never got posted, lets it be posted again."""
        with self._sessions.begin() as session:
            req = self._load(session, request_id, lock=True)
            self._ensure_open(req)
            user = self._user(session, actor)
            if user.id != req.requester_id:
                raise NotAllowed("Only the requester can ask for approval of this request.")
            if req.status is RequestStatus.PENDING_APPROVAL:
                if req.admin_message_ts:
                    raise AlreadyDecided(
                        "It is already with the approvers; their decision will show here."
                    )
                return request_view(req)
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

    def _check_reject(self, session: Session, req: VmRequest, actor: Actor) -> User:
        self._ensure_open(req)
        user = self._user(session, actor)
        if user.role.rank < Role.APPROVER.rank:
            raise NotAllowed("Only approvers can reject requests.")
        return user

    def check_can_reject(self, request_id: int, actor: Actor) -> None:
        """Raise what `reject` would raise, before asking the approver for a reason."""
        with self._sessions.begin() as session:
            self._check_reject(session, self._load(session, request_id), actor)

    def reject(self, request_id: int, actor: Actor, reason: str = "") -> RequestView:
        with self._sessions.begin() as session:
            req = self._load(session, request_id)
            user = self._check_reject(session, req, actor)
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
        self._notifier.request_changed(view, "rejected", reason[:500])
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

    def use_nearest(self, request_id: int, actor: Actor) -> RequestView:
        """Swap a denied spec for the nearest one policy allows, as offered on the card."""
        with self._sessions() as session:
            req = self._load(session, request_id)
            spec = VmSpec.model_validate(req.spec)
            verdict = self._verdict(session, spec, req.requester, req.slack_channel)
            text = req.original_text
        if verdict.decision != "deny":
            raise AlreadyDecided("This request is allowed as it is now; press its first button.")
        if verdict.nearest is None:
            raise NotAllowed(
                f"No smaller VM would be allowed either ({verdict.reason}). "
                "Cancel it, or ask an admin."
            )
        nearest = verdict.nearest.model_copy(
            update={"rationale": f"Nearest allowed: {verdict.reason}"[:500]}
        )
        return self.revise(request_id, actor, text, nearest, change="nearest allowed spec")

    def _check_revise(self, session: Session, req: VmRequest, actor: Actor) -> User:
        user = self._user(session, actor)
        if user.id != req.requester_id:
            raise NotAllowed("Only the requester can change this request.")
        if req.status is not RequestStatus.SUGGESTED:
            raise AlreadyDecided(
                f"This request is {req.status.value} and can no longer be changed; "
                "ask again with /vm for a new one."
            )
        return user

    def check_can_revise(self, request_id: int, actor: Actor) -> None:
        """Raise what `revise` would raise, before a form is opened for nothing."""
        with self._sessions.begin() as session:
            self._check_revise(session, self._load(session, request_id), actor)

    def revise(
        self, request_id: int, actor: Actor, text: str, spec: VmSpec, *, change: str = ""
    ) -> RequestView:
        """Replace a suggested request's spec; an approved request is never changed.

        The thread is told what changed (`change` is what the person asked for)."""
        with self._sessions.begin() as session:
            req = self._load(session, request_id, lock=True)
            user = self._check_revise(session, req, actor)
            # The name stays: it is how people refer to the VM in the thread.
            before = VmSpec.model_validate(req.spec)
            spec = spec.model_copy(update={"name": before.name})
            verdict = self._verdict(session, spec, user, req.slack_channel)
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
                policy_headroom=verdict.headroom,
            )
        view = self.get(request_id)
        self._notifier.request_changed(view, "revised", spec_diff(before, spec) or "no change")
        return view

    def expire_pending(self) -> list[int]:
        """Close requests that waited for an approver longer than the policy allows."""
        cutoff = self._clock.now() - timedelta(hours=self._policy.pending_expiry_hours)
        with self._sessions() as session:
            stale = list(
                session.scalars(
                    select(VmRequest.id).where(
                        VmRequest.status == RequestStatus.PENDING_APPROVAL,
                        VmRequest.updated_at < cutoff,
                    )
                )
            )
        expired = []
        for request_id in stale:
            try:
                with self._sessions.begin() as session:
                    move_request(
                        session,
                        request_id,
                        RequestStatus.EXPIRED,
                        actor="worker",
                        only_from={RequestStatus.PENDING_APPROVAL},
                        details={"after_hours": self._policy.pending_expiry_hours},
                        decided_at=self._clock.now(),
                    )
            except IllegalTransition:
                continue  # decided meanwhile
            expired.append(request_id)
            self._notifier.request_changed(self.get(request_id), "expired")
        return expired

    def open_requests(self, actor: Actor) -> tuple[list[RequestView], list[RequestView]]:
        """The actor's own open requests, and (for approvers) others' awaiting approval."""
        with self._sessions.begin() as session:
            user = self._user(session, actor)
            base = (
                requests_query()
                .where(VmRequest.status.in_(OPEN))
                .order_by(VmRequest.id.desc())
                .limit(20)
            )
            mine = [
                request_view(r)
                for r in session.scalars(base.where(VmRequest.requester_id == user.id))
            ]
            queue: list[RequestView] = []
            if user.role.rank >= Role.APPROVER.rank:
                queue = [
                    request_view(r)
                    for r in session.scalars(
                        base.where(
                            VmRequest.status == RequestStatus.PENDING_APPROVAL,
                            VmRequest.requester_id != user.id,
                        )
                    )
                ]
            return mine, queue

    def find_by_thread(self, channel: str, thread_ts: str) -> RequestView | None:
        with self._sessions() as session:
            request_id = session.scalar(
                select(VmRequest.id).where(
                    VmRequest.slack_channel == channel, VmRequest.thread_ts == thread_ts
                )
            )
            return request_view(self._load(session, request_id)) if request_id else None

    @staticmethod
    def _ensure_open(req: VmRequest) -> None:
        if req.status in OPEN:
            return
        who = f" by <@{req.approver.slack_user_id}>" if req.approver else ""
        raise AlreadyDecided(f"This request was already {req.status.value}{who}.")


def ttl_delta(spec: VmSpec) -> timedelta | None:
    return timedelta(hours=spec.ttl_hours) if spec.ttl_hours else None


DIFF_FIELDS = (
    ("machine_type", "machine"), ("vcpus", "vCPUs"), ("memory_gb", "memory GB"),
    ("disk_gb", "disk GB"), ("os_image", "OS"), ("region", "region"), ("spot", "spot"),
    ("ttl_hours", "hours"), ("packages", "installs"), ("gpu", "GPU"),
)  # fmt: skip


def spec_diff(before: VmSpec, after: VmSpec) -> str:
    """What changed between two specs, for people: "vCPUs 2 → 4 · region us-central1 → …"."""

    def show(value: object) -> str:
        if isinstance(value, tuple):
            return ", ".join(map(str, value)) or "nothing"
        if value is None:
            return "none"
        if hasattr(value, "type"):
            return f"{value.count}× {value.type}"  # type: ignore[attr-defined]
        return f"{value:g}" if isinstance(value, float) else str(value)

    changes = [
        f"{label} {show(getattr(before, field))} → {show(getattr(after, field))}"
        for field, label in DIFF_FIELDS
        if getattr(before, field) != getattr(after, field)
    ]
    if changes and before.cost.usd_per_hour != after.cost.usd_per_hour:
        changes.append(f"now ${after.cost.usd_per_hour:.3f}/h")
    return " · ".join(changes)
