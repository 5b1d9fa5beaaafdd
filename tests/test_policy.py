from __future__ import annotations

import pytest

from db.models import Role
from provisioning.errors import NotAllowed
from provisioning.policy import PolicyConfig, Verdict, check_approval, evaluate
from provisioning.spec import Cost, Gpu, VmSpec

CONFIG = PolicyConfig(auto_approve_usd_per_hour=1.0, auto_approve_usd_total=10.0)


def spec(**changes) -> VmSpec:
    base = {
        "name": "dev-box-1a2b",
        "machine_type": "e2-standard-2",
        "vcpus": 2,
        "memory_gb": 8,
        "os_image": "ubuntu-2204-lts",
        "disk_gb": 30,
        "region": "us-central1",
        "ttl_hours": 2,
        "cost": Cost(usd_per_hour=0.07, usd_total=0.14),
    }
    return VmSpec(**{**base, **changes})


@pytest.mark.parametrize(
    ("changes", "role", "decision", "reason"),
    [
        ({}, Role.REQUESTER, "allow", "under $1/h, no GPU"),
        (
            {"gpu": Gpu(type="nvidia-l4", count=1), "cost": Cost(usd_per_hour=0.9, usd_total=1.8)},
            Role.REQUESTER,
            "needs_approval",
            "GPU requested",
        ),
        (
            {"cost": Cost(usd_per_hour=1.5, usd_total=3.0)},
            Role.REQUESTER,
            "needs_approval",
            "over the $1/h auto-approve limit",
        ),
        (
            {"cost": Cost(usd_per_hour=0.5, usd_total=36.0), "ttl_hours": 72},
            Role.REQUESTER,
            "needs_approval",
            "over the $10 auto-approve total",
        ),
        (
            {"ttl_hours": None, "cost": Cost(usd_per_hour=0.07)},
            Role.REQUESTER,
            "needs_approval",
            "no expiry set",
        ),
        (
            {"os_family": "windows", "os_image": "windows-2022"},
            Role.REQUESTER,
            "needs_approval",
            "Windows requested",
        ),
        (
            {"vcpus": 32, "machine_type": "e2-standard-32"},
            Role.REQUESTER,
            "deny",
            "32 vCPUs is over your limit of 16",
        ),
        (
            {"vcpus": 32, "machine_type": "e2-standard-32"},
            Role.APPROVER,
            "allow",
            "under $1/h, no GPU",
        ),
        ({"ttl_hours": 100}, Role.REQUESTER, "deny", "100 h is over your limit of 72 h"),
        (
            {},
            Role.VIEWER,
            "deny",
            "viewers cannot request VMs; ask an admin for the requester role",
        ),
    ],
)
def test_verdicts(changes: dict, role: Role, decision: str, reason: str) -> None:
    verdict = evaluate(spec(**changes), role, CONFIG)
    assert verdict.decision == decision
    assert verdict.reason == reason


ALLOW, REVIEW, DENY = (
    Verdict("allow"),
    Verdict("needs_approval", ("GPU requested",)),
    Verdict("deny", ("too big",)),
)


@pytest.mark.parametrize(
    ("verdict", "role", "is_requester", "allowed"),
    [
        (ALLOW, Role.REQUESTER, True, True),
        (ALLOW, Role.REQUESTER, False, False),
        (ALLOW, Role.APPROVER, False, True),
        (ALLOW, Role.VIEWER, True, False),
        (REVIEW, Role.REQUESTER, True, False),
        (REVIEW, Role.APPROVER, True, False),  # four-eyes, even for approvers
        (REVIEW, Role.ADMIN, True, False),
        (REVIEW, Role.REQUESTER, False, False),
        (REVIEW, Role.APPROVER, False, True),
        (REVIEW, Role.ADMIN, False, True),
        (DENY, Role.ADMIN, False, False),
    ],
)
def test_check_approval(verdict: Verdict, role: Role, is_requester: bool, allowed: bool) -> None:
    if allowed:
        check_approval(verdict, actor_role=role, actor_is_requester=is_requester)
    else:
        with pytest.raises(NotAllowed):
            check_approval(verdict, actor_role=role, actor_is_requester=is_requester)
