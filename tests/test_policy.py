from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from db.models import Role
from provisioning.catalog import default_catalog, price_spec
from provisioning.errors import NotAllowed
from provisioning.policy import (
    ApprovalTriggers,
    PolicyConfig,
    PolicyError,
    RoleLimits,
    Usage,
    Verdict,
    check_approval,
    evaluate,
    headroom,
    load_policy,
    nearest_allowed,
)
from provisioning.settings import ConfigError
from provisioning.spec import Cost, Gpu, VmSpec

CONFIG = PolicyConfig(auto_approve_usd_per_hour=1.0, auto_approve_usd_total=10.0)
CATALOG = default_catalog()
REQUESTER = CONFIG.limits[Role.REQUESTER]


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


def priced(machine_type: str, **changes) -> VmSpec:
    """A spec the catalog would serve as it stands: the machine's own shape, the catalog's price."""
    machine = CATALOG.machine_type(machine_type)
    shape = {
        "machine_type": machine_type,
        "vcpus": int(machine.vcpus),
        "memory_gb": machine.memory_gb,
    }
    draft = spec(**{**shape, **changes})
    return draft.model_copy(update={"cost": price_spec(CATALOG, draft)})


def with_limits(role: Role, **changes) -> PolicyConfig:
    limits = dict(CONFIG.limits)
    limits[role] = dataclasses.replace(limits[role], **changes)
    return dataclasses.replace(CONFIG, limits=limits)


# -- verdicts on the spec alone ------------------------------------------------------------------


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
            {"cost": Cost(usd_per_hour=0.5, usd_total=12.0), "ttl_hours": 24},
            Role.REQUESTER,
            "needs_approval",
            "over the $10 auto-approve total",
        ),
        (
            {"cost": Cost(usd_per_hour=0.1, usd_total=7.2), "ttl_hours": 72},
            Role.REQUESTER,
            "needs_approval",
            "longer than 24 h",
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
        (
            {"memory_gb": 256, "disk_gb": 600, "gpu": Gpu(type="nvidia-l4", count=2)},
            Role.REQUESTER,
            "deny",
            "256 GB of memory is over your limit of 128 GB; 2 GPUs is over your limit of 1; "
            "600 GB of disk is over your limit of 500 GB",
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


@pytest.mark.parametrize(
    ("triggers", "changes", "decision", "reason"),
    [
        (ApprovalTriggers(gpu=False), {"gpu": Gpu(type="nvidia-l4", count=1)}, "allow", ""),
        (
            ApprovalTriggers(windows=False),
            {"os_family": "windows", "os_image": "windows-2022"},
            "allow",
            "",
        ),
        (ApprovalTriggers(spot_off=True), {}, "needs_approval", "on-demand instead of spot"),
        (ApprovalTriggers(spot_off=True), {"spot": True}, "allow", ""),
        (ApprovalTriggers(ttl_over_hours=1), {}, "needs_approval", "longer than 1 h"),
        (ApprovalTriggers(ttl_over_hours=None), {"ttl_hours": 72}, "allow", ""),
        (
            ApprovalTriggers(spot_off=True, ttl_over_hours=1),
            {"gpu": Gpu(type="nvidia-l4", count=1), "os_family": "windows"},
            "needs_approval",
            "GPU requested; Windows requested; on-demand instead of spot; longer than 1 h",
        ),
    ],
)
def test_what_always_needs_an_approver_is_configurable(
    triggers: ApprovalTriggers, changes: dict, decision: str, reason: str
) -> None:
    config = dataclasses.replace(CONFIG, always_needs_approval=triggers)
    verdict = evaluate(spec(**changes), Role.REQUESTER, config)
    assert verdict.decision == decision
    if decision != "allow":
        assert verdict.reason == reason


@pytest.mark.parametrize(
    ("channel", "decision", "reason"),
    [
        ("C0ALLOWED", "allow", "under $1/h, no GPU"),
        (None, "allow", "under $1/h, no GPU"),  # e.g. re-checked where the channel is unknown
        (
            "C0RANDOM",
            "deny",
            "VMs can't be requested in this channel; ask in one of the channels the admins allowed",
        ),
    ],
)
def test_allowed_channels(channel: str | None, decision: str, reason: str) -> None:
    config = dataclasses.replace(CONFIG, allowed_channels=frozenset({"C0ALLOWED", "C0OTHER"}))
    verdict = evaluate(spec(), Role.REQUESTER, config, channel=channel)
    assert (verdict.decision, verdict.reason, verdict.nearest) == (decision, reason, None)
    assert evaluate(spec(), Role.REQUESTER, CONFIG, channel="C0RANDOM").decision == "allow"


# -- quotas and budgets ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("usage", "changes", "reasons"),
    [
        (Usage(running_vms=2, running_vcpus=8, month_spend_usd=40), {}, ()),
        (
            Usage(running_vms=3, running_vcpus=6),
            {},
            ("you already run 3 of your 3 VMs; destroy one with /vm destroy NAME",),
        ),
        (
            Usage(running_vms=1, running_vcpus=28),
            {"vcpus": 8, "machine_type": "e2-standard-8", "memory_gb": 32},
            (
                "your VMs already use 28 of your 32 vCPUs, so 4 are left for this one; "
                "ask for fewer or destroy one with /vm destroy NAME",
            ),
        ),
        (
            Usage(month_spend_usd=196.9),
            {"cost": Cost(usd_per_hour=0.5, usd_total=12.4)},
            ("this would cost ≈ $12.40 and you have $3.10 left of your $200 monthly budget",),
        ),
        (
            Usage(month_spend_usd=250),
            {},
            ("this would cost ≈ $0.14 and you have $0 left of your $200 monthly budget",),
        ),
        (
            # Without an expiry, a VM can run to the end of the month.
            Usage(month_spend_usd=190, hours_left_in_month=200),
            {"ttl_hours": None, "cost": Cost(usd_per_hour=0.07)},
            ("this would cost ≈ $14 and you have $10 left of your $200 monthly budget",),
        ),
        (
            Usage(team_month_spend_usd=4999.5),
            {},
            (),
        ),
        (
            Usage(team_month_spend_usd=4999.9),
            {},
            (
                "this would cost ≈ $0.14 and the team has $0.10 left of its $5,000 monthly "
                "budget; ask an admin",
            ),
        ),
        (
            Usage(running_vms=3, running_vcpus=32, month_spend_usd=200),
            {},
            (
                "you already run 3 of your 3 VMs; destroy one with /vm destroy NAME",
                "your VMs already use 32 of your 32 vCPUs, so 0 are left for this one; "
                "ask for fewer or destroy one with /vm destroy NAME",
                "this would cost ≈ $0.14 and you have $0 left of your $200 monthly budget",
            ),
        ),
    ],
)
def test_quota_and_budget_verdicts(usage: Usage, changes: dict, reasons: tuple[str, ...]) -> None:
    verdict = evaluate(spec(**changes), Role.REQUESTER, CONFIG, usage=usage)
    assert verdict.decision == ("deny" if reasons else "allow")
    if reasons:
        assert verdict.reasons == reasons


def test_unlimited_budgets_never_deny() -> None:
    config = dataclasses.replace(
        with_limits(Role.REQUESTER, monthly_budget_usd=None), team_monthly_budget_usd=None
    )
    usage = Usage(month_spend_usd=1e6, team_month_spend_usd=1e7)
    assert evaluate(spec(), Role.REQUESTER, config, usage=usage).decision == "allow"


@pytest.mark.parametrize(
    ("role", "config", "usage", "line"),
    [
        (
            Role.REQUESTER,
            CONFIG,
            Usage(running_vms=1, running_vcpus=16, month_spend_usd=162.1),
            "You have 2 of 3 VMs · 16 of 32 vCPUs · $37.90 of $200 left this month",
        ),
        (
            Role.REQUESTER,
            CONFIG,
            Usage(running_vms=5, running_vcpus=40, month_spend_usd=300),
            "You have 0 of 3 VMs · 0 of 32 vCPUs · $0 of $200 left this month",
        ),
        (
            Role.REQUESTER,
            CONFIG,
            Usage(month_spend_usd=10, team_month_spend_usd=4950),
            "You have 3 of 3 VMs · 32 of 32 vCPUs · $190 of $200 left this month"
            " (team: $50 of $5,000)",
        ),
        (
            Role.ADMIN,
            CONFIG,
            Usage(running_vms=2, running_vcpus=8, team_month_spend_usd=1200),
            "You have 48 of 50 VMs · 992 of 1000 vCPUs · no personal budget left this month "
            "(team: $3,800 of $5,000)",
        ),
    ],
)
def test_headroom(role: Role, config: PolicyConfig, usage: Usage, line: str) -> None:
    assert headroom(role, config, usage) == line
    assert evaluate(spec(), role, config, usage=usage).headroom == line


# -- the nearest spec that would be allowed ------------------------------------------------------


@pytest.mark.parametrize(
    ("asked", "role", "config", "usage", "expected"),
    [
        pytest.param(
            priced("e2-standard-32"),
            Role.REQUESTER,
            CONFIG,
            None,
            priced("e2-highmem-16"),
            id="vcpus capped, memory kept",
        ),
        pytest.param(
            priced("n2-highmem-32"),
            Role.REQUESTER,
            CONFIG,
            None,
            priced("e2-highmem-16"),
            id="vcpus and memory capped",
        ),
        pytest.param(
            priced("e2-standard-2", ttl_hours=100),
            Role.REQUESTER,
            CONFIG,
            None,
            priced("e2-standard-2", ttl_hours=72),
            id="ttl cut to the max",
        ),
        pytest.param(
            priced("e2-standard-2", disk_gb=1000),
            Role.REQUESTER,
            CONFIG,
            None,
            priced("e2-standard-2", disk_gb=500),
            id="disk capped",
        ),
        pytest.param(
            priced("g2-standard-24", gpu=Gpu(type="nvidia-l4", count=2)),
            Role.REQUESTER,
            CONFIG,
            None,
            priced("g2-standard-16", gpu=Gpu(type="nvidia-l4", count=1)),
            id="gpus limited",
        ),
        pytest.param(
            priced("g2-standard-8", gpu=Gpu(type="nvidia-l4", count=1)),
            Role.REQUESTER,
            with_limits(Role.REQUESTER, max_gpus=0),
            None,
            priced("e2-standard-8"),
            id="gpu dropped",
        ),
        pytest.param(
            priced("n1-standard-8", gpu=Gpu(type="nvidia-tesla-t4", count=4)),
            Role.REQUESTER,
            with_limits(Role.REQUESTER, max_gpus=3),
            None,
            priced("n1-standard-8", gpu=Gpu(type="nvidia-tesla-t4", count=2)),
            id="attached gpus limited to a count that exists",
        ),
        pytest.param(
            priced("e2-standard-8"),
            Role.REQUESTER,
            CONFIG,
            Usage(running_vms=1, running_vcpus=28),
            priced("e2-highmem-4"),
            id="vcpu quota leaves 4",
        ),
        pytest.param(
            priced("e2-highmem-8"),
            Role.REQUESTER,
            with_limits(Role.REQUESTER, max_memory_gb=32),
            Usage(running_vms=1, running_vcpus=29),
            priced("e2-highmem-2"),
            id="nothing with 3 vCPUs: the nearest shape the catalog has",
        ),
        pytest.param(
            priced("e2-standard-16", ttl_hours=72),
            Role.REQUESTER,
            CONFIG,
            Usage(month_spend_usd=195),
            priced("e2-standard-16", ttl_hours=9),
            id="ttl cut to what the budget pays for",
        ),
        pytest.param(
            priced("e2-standard-2", ttl_hours=None),
            Role.REQUESTER,
            CONFIG,
            Usage(month_spend_usd=195),
            priced("e2-standard-2", ttl_hours=70),
            id="expiry set to what the budget pays for",
        ),
        pytest.param(
            priced("e2-standard-2"),
            Role.REQUESTER,
            CONFIG,
            Usage(running_vms=1),
            priced("e2-standard-2"),
            id="already allowed: unchanged",
        ),
        pytest.param(priced("e2-standard-2"), Role.VIEWER, CONFIG, None, None, id="viewer"),
        pytest.param(
            priced("e2-standard-2"),
            Role.REQUESTER,
            CONFIG,
            Usage(running_vms=3),
            None,
            id="no VM left",
        ),
        pytest.param(
            priced("e2-standard-2"),
            Role.REQUESTER,
            CONFIG,
            Usage(running_vcpus=32),
            None,
            id="no vcpu left",
        ),
        pytest.param(
            priced("e2-standard-2"),
            Role.REQUESTER,
            CONFIG,
            Usage(month_spend_usd=199.95),
            None,
            id="budget exhausted",
        ),
        pytest.param(
            priced("e2-standard-2", os_family="windows", os_image="windows-2022", disk_gb=50),
            Role.REQUESTER,
            with_limits(Role.REQUESTER, windows_allowed=False),
            None,
            None,
            id="windows not allowed: another OS is not nearest",
        ),
        pytest.param(
            priced("e2-standard-2", os_family="windows", os_image="windows-2022", disk_gb=50),
            Role.REQUESTER,
            with_limits(Role.REQUESTER, max_disk_gb=40),
            None,
            None,
            id="disk cap below the image minimum",
        ),
    ],
)
def test_nearest_allowed(
    asked: VmSpec, role: Role, config: PolicyConfig, usage: Usage | None, expected: VmSpec | None
) -> None:
    assert nearest_allowed(asked, role, config, usage, CATALOG) == expected


def test_a_deny_offers_the_nearest_allowed_spec() -> None:
    asked = priced("e2-standard-32")
    verdict = evaluate(asked, Role.REQUESTER, CONFIG, catalog=CATALOG)
    assert verdict.decision == "deny"
    assert verdict.nearest == priced("e2-highmem-16")
    assert evaluate(verdict.nearest, Role.REQUESTER, CONFIG).decision == "allow"
    assert evaluate(priced("e2-standard-2"), Role.REQUESTER, CONFIG).nearest is None


# -- the approval rule ---------------------------------------------------------------------------

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


# -- the policy file -----------------------------------------------------------------------------


def test_the_shipped_file_is_the_default() -> None:
    assert load_policy(None) == PolicyConfig()
    assert load_policy() == PolicyConfig()


def test_keys_left_out_keep_the_defaults(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(
        "roles:\n"
        "  requester:\n"
        "    max_vcpus: 8\n"
        "    monthly_budget_usd: null\n"
        "team: {monthly_budget_usd: 900.5}\n"
        "auto_approve: {max_usd_per_hour: 0.5}\n"
        "always_needs_approval: {spot_off: true, ttl_over_hours: null}\n"
        "allowed_channels: [C0DEVOPS, G0PRIVATE]\n"
        "approvals: {expire_after_hours: 48, remind_after_hours: null}\n"
        "vm_expiry: {action: stop}\n"
    )
    default = PolicyConfig()
    limits = dict(default.limits)
    limits[Role.REQUESTER] = dataclasses.replace(
        limits[Role.REQUESTER], max_vcpus=8, monthly_budget_usd=None
    )
    assert load_policy(path) == dataclasses.replace(
        default,
        auto_approve_usd_per_hour=0.5,
        limits=limits,
        team_monthly_budget_usd=900.5,
        always_needs_approval=ApprovalTriggers(spot_off=True, ttl_over_hours=None),
        allowed_channels=frozenset({"C0DEVOPS", "G0PRIVATE"}),
        pending_expiry_hours=48,
        pending_reminder_hours=None,
        vm_expiry_action="stop",
    )
    assert load_policy(str(path)).limits[Role.REQUESTER] == RoleLimits(
        **{**dataclasses.asdict(REQUESTER), "max_vcpus": 8, "monthly_budget_usd": None}
    )


def test_an_empty_file_is_the_default(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text("# nothing changed yet\n")
    assert load_policy(path) == PolicyConfig()


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (
            "roles:\n  requester:\n    max_vcpus: lots\n",
            "roles.requester.max_vcpus must be a whole number ≥ 0, got 'lots'",
        ),
        (
            "roles:\n  requester:\n    max_gpus: 1.5\n",
            "roles.requester.max_gpus must be a whole number ≥ 0, got 1.5",
        ),
        (
            "roles:\n  admin:\n    max_concurrent_vms: -1\n",
            "roles.admin.max_concurrent_vms must be a whole number ≥ 0, got -1",
        ),
        (
            "roles:\n  viewer:\n    max_ttl_hours: true\n",
            "roles.viewer.max_ttl_hours must be a number ≥ 0, got True",
        ),
        (
            "roles:\n  requester:\n    windows_allowed: sometimes\n",
            "roles.requester.windows_allowed must be true or false, got 'sometimes'",
        ),
        (
            "roles:\n  requester:\n    monthly_budget_usd: $50\n",
            "roles.requester.monthly_budget_usd must be a number ≥ 0, or null for no limit, "
            "got '$50'",
        ),
        (
            "roles:\n  requester:\n    max_vcpu: 4\n",
            "roles.requester.max_vcpu is not a known key; expected one of max_vcpus, "
            "max_memory_gb, max_gpus, max_disk_gb, max_ttl_hours, max_concurrent_vms, "
            "max_total_vcpus, windows_allowed, monthly_budget_usd",
        ),
        (
            "roles:\n  intern: {}\n",
            "roles.intern is not a known key; expected one of viewer, requester, approver, admin",
        ),
        (
            "roles:\n  requester: 16\n",
            "roles.requester must be a mapping of keys, got 16",
        ),
        (
            "auto_aprove:\n  max_usd_total: 5\n",
            "auto_aprove is not a known key; expected one of roles, team, auto_approve, "
            "always_needs_approval, allowed_channels, approvals, vm_expiry",
        ),
        (
            "auto_approve:\n  max_usd_per_hour:\n",
            "auto_approve.max_usd_per_hour must be a number ≥ 0, got nothing",
        ),
        (
            "always_needs_approval:\n  ttl_over_hours: 0\n",
            "always_needs_approval.ttl_over_hours must be a number of hours > 0, or null for "
            "none, got 0",
        ),
        (
            "allowed_channels: '#devops'\n",
            "allowed_channels must be a list of Slack channel ids, like [C0123ABCD]; "
            "[] = anywhere, got '#devops'",
        ),
        (
            "allowed_channels: [C0DEVOPS, '#random']\n",
            "allowed_channels.1 must be a Slack channel id like C0123ABCD (not a #name), "
            "got '#random'",
        ),
        (
            "approvals:\n  expire_after_hours: never\n",
            "approvals.expire_after_hours must be a number of hours > 0, got 'never'",
        ),
        (
            "vm_expiry:\n  action: delete\n",
            "vm_expiry.action must be destroy or stop, got 'delete'",
        ),
        (
            "roles:\n  requester:\n    max_vcpus: lots\n    max_gpus: -2\n",
            "roles.requester.max_vcpus must be a whole number ≥ 0, got 'lots'; "
            "roles.requester.max_gpus must be a whole number ≥ 0, got -2",
        ),
    ],
)
def test_a_malformed_file_is_rejected_naming_the_key(
    tmp_path: Path, text: str, problem: str
) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(text)
    with pytest.raises(PolicyError) as raised:
        load_policy(path)
    assert str(raised.value) == f"{path}: {problem}."
    assert isinstance(raised.value, ConfigError)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (
            "roles:\n  requester:\n    max_vcpus: 4\n   max_gpus: 1\n",
            " line 4, column 4: cannot parse the YAML (expected <block end>, but found "
            "'<block mapping start>').",
        ),
        (
            "- roles\n- team\n",
            " the policy must be a mapping of keys (roles, team, auto_approve, ...), got a list.",
        ),
    ],
)
def test_a_file_that_is_not_a_policy_is_rejected(tmp_path: Path, text: str, problem: str) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(text)
    with pytest.raises(PolicyError) as raised:
        load_policy(path)
    assert str(raised.value) == f"{path}:{problem}"


def test_a_missing_file_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"
    with pytest.raises(PolicyError) as raised:
        load_policy(path)
    assert str(raised.value) == f"{path}: policy file not found; check the path."
