"""Policy: may this spec run for this role, and does it need a second pair of eyes?

`evaluate` is pure; `check_approval` is the single, readable approval rule.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from db.models import Role
from provisioning.errors import NotAllowed
from provisioning.spec import VmSpec

Decision = Literal["allow", "needs_approval", "deny"]


@dataclass(frozen=True)
class RoleLimits:
    max_vcpus: int
    max_gpus: int
    max_ttl_hours: float
    windows_allowed: bool


@dataclass(frozen=True)
class PolicyConfig:
    auto_approve_usd_per_hour: float = 1.0
    auto_approve_usd_total: float = 10.0
    limits: dict[Role, RoleLimits] = field(
        default_factory=lambda: {
            Role.VIEWER: RoleLimits(0, 0, 0, False),
            Role.REQUESTER: RoleLimits(16, 1, 72, True),
            Role.APPROVER: RoleLimits(64, 4, 168, True),
            Role.ADMIN: RoleLimits(416, 16, 24 * 90, True),
        }
    )


@dataclass(frozen=True)
class Verdict:
    decision: Decision
    reasons: tuple[str, ...] = ()

    @property
    def reason(self) -> str:
        return "; ".join(self.reasons)


def evaluate(spec: VmSpec, role: Role, config: PolicyConfig) -> Verdict:
    limits = config.limits[role]
    if role is Role.VIEWER:
        return Verdict("deny", ("viewers cannot request VMs; ask an admin for the requester role",))
    denials = []
    if spec.vcpus > limits.max_vcpus:
        denials.append(f"{spec.vcpus} vCPUs is over your limit of {limits.max_vcpus}")
    gpus = spec.gpu.count if spec.gpu else 0
    if gpus > limits.max_gpus:
        denials.append(f"{gpus} GPUs is over your limit of {limits.max_gpus}")
    if spec.ttl_hours is not None and spec.ttl_hours > limits.max_ttl_hours:
        denials.append(f"{spec.ttl_hours:g} h is over your limit of {limits.max_ttl_hours:g} h")
    if spec.os_family == "windows" and not limits.windows_allowed:
        denials.append("Windows is not allowed for your role")
    if denials:
        return Verdict("deny", tuple(denials))

    reasons = []
    if spec.gpu:
        reasons.append("GPU requested")
    if spec.os_family == "windows":
        reasons.append("Windows requested")
    if spec.cost.usd_per_hour > config.auto_approve_usd_per_hour:
        reasons.append(f"over the ${config.auto_approve_usd_per_hour:g}/h auto-approve limit")
    total = spec.cost.usd_total
    if total is None:
        reasons.append("no expiry set")
    elif total > config.auto_approve_usd_total:
        reasons.append(f"over the ${config.auto_approve_usd_total:g} auto-approve total")
    if reasons:
        return Verdict("needs_approval", tuple(reasons))
    return Verdict(
        "allow",
        (f"under ${config.auto_approve_usd_per_hour:g}/h" + ("" if spec.gpu else ", no GPU"),),
    )


def check_approval(verdict: Verdict, *, actor_role: Role, actor_is_requester: bool) -> None:
    """Raise NotAllowed unless this actor may approve a request with this verdict.

    - Nobody approves a denied spec.
    - An allowed spec may be approved by its requester, or by an approver.
    - A spec that needs approval needs an approver who is not the requester (four-eyes).
    """
    if verdict.decision == "deny":
        raise NotAllowed(f"This request is denied by policy: {verdict.reason}.")
    if actor_role is Role.VIEWER:
        raise NotAllowed("Viewers cannot approve VMs. Ask an admin for the requester role.")
    if verdict.decision == "allow":
        if actor_is_requester or actor_role.rank >= Role.APPROVER.rank:
            return
        raise NotAllowed("Only the requester or an approver can approve this request.")
    if actor_is_requester:
        raise NotAllowed(
            f"This request needs an approver ({verdict.reason}), and it cannot be you: "
            "press Request approval to send it to the admins."
        )
    if actor_role.rank < Role.APPROVER.rank:
        raise NotAllowed("Only approvers can approve this request.")
