"""Policy: may this spec run for this role, and does it need a second pair of eyes?

The rules live in a YAML file (`default_policy.yaml` ships the defaults; `load_policy` reads it),
and in three pure functions over it:

- `evaluate` gives the verdict: allow, needs approval (with reasons) or deny (with reasons and the
  nearest spec that would be allowed);
- `nearest_allowed` shrinks a denied spec to one the policy allows, for "Use this instead";
- `check_approval` is the single, readable approval rule (four-eyes).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, ValidationError

from db.models import Role
from provisioning.catalog import (
    HOURS_PER_MONTH,
    Catalog,
    CatalogError,
    MachineType,
    cheapest_fit,
    default_catalog,
    price_vm,
)
from provisioning.errors import NotAllowed
from provisioning.settings import ConfigError
from provisioning.spec import Gpu, VmSpec
from provisioning.validation import InvalidSpec, validate_spec

Decision = Literal["allow", "needs_approval", "deny"]
ExpireAction = Literal["destroy", "stop"]

DEFAULT_POLICY_FILE = "default_policy.yaml"


class PolicyError(ConfigError):
    """The policy file is missing or malformed; the message names the file, the key and the fix."""


# -- the policy, as the rest of the system sees it ------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class RoleLimits:
    max_vcpus: int
    max_memory_gb: float
    max_gpus: int
    max_disk_gb: int
    max_ttl_hours: float
    max_concurrent_vms: int
    max_total_vcpus: int
    windows_allowed: bool
    monthly_budget_usd: float | None  # None: no cap


@dataclass(frozen=True, kw_only=True)
class ApprovalTriggers:
    """What needs an approver even when it is cheap."""

    gpu: bool = True
    windows: bool = True
    spot_off: bool = False
    ttl_over_hours: float | None = 24.0


def _default_limits() -> dict[Role, RoleLimits]:
    # Keep equal to default_policy.yaml (a test checks).
    return {
        Role.VIEWER: RoleLimits(
            max_vcpus=0,
            max_memory_gb=0,
            max_gpus=0,
            max_disk_gb=0,
            max_ttl_hours=0,
            max_concurrent_vms=0,
            max_total_vcpus=0,
            windows_allowed=False,
            monthly_budget_usd=0,
        ),
        Role.REQUESTER: RoleLimits(
            max_vcpus=16,
            max_memory_gb=128,
            max_gpus=1,
            max_disk_gb=500,
            max_ttl_hours=72,
            max_concurrent_vms=3,
            max_total_vcpus=32,
            windows_allowed=True,
            monthly_budget_usd=200,
        ),
        Role.APPROVER: RoleLimits(
            max_vcpus=64,
            max_memory_gb=512,
            max_gpus=4,
            max_disk_gb=2000,
            max_ttl_hours=168,
            max_concurrent_vms=10,
            max_total_vcpus=128,
            windows_allowed=True,
            monthly_budget_usd=1000,
        ),
        Role.ADMIN: RoleLimits(
            max_vcpus=416,
            max_memory_gb=12000,
            max_gpus=16,
            max_disk_gb=65536,
            max_ttl_hours=24 * 90,
            max_concurrent_vms=50,
            max_total_vcpus=1000,
            windows_allowed=True,
            monthly_budget_usd=None,
        ),
    }


@dataclass(frozen=True, kw_only=True)
class PolicyConfig:
    """The whole policy. `PolicyConfig()` is the shipped default, equal to `load_policy(None)`."""

    auto_approve_usd_per_hour: float = 1.0
    auto_approve_usd_total: float = 10.0
    limits: Mapping[Role, RoleLimits] = field(default_factory=_default_limits)
    team_monthly_budget_usd: float | None = 5000.0
    always_needs_approval: ApprovalTriggers = field(default_factory=ApprovalTriggers)
    allowed_channels: frozenset[str] = frozenset()  # empty: anywhere
    pending_expiry_hours: float = 24.0
    pending_reminder_hours: float | None = 4.0
    vm_expiry_action: ExpireAction = "destroy"


@dataclass(frozen=True)
class Usage:
    """What a user already holds and spent, as counted by `provisioning.budget.usage_for`."""

    running_vms: int = 0  # VMs held now (stopped ones count)
    running_vcpus: int = 0  # vCPUs of the VMs that are up or on their way up
    month_spend_usd: float = 0.0  # the user's estimated spend this calendar month (UTC)
    team_month_spend_usd: float = 0.0  # everyone's
    hours_left_in_month: float = HOURS_PER_MONTH  # bounds what a VM without expiry costs this month


@dataclass(frozen=True)
class Verdict:
    decision: Decision
    reasons: tuple[str, ...] = ()
    nearest: VmSpec | None = None  # for a deny: the nearest spec that would be allowed
    headroom: str = ""  # e.g. "2 of 3 VMs · 16 of 32 vCPUs · $37.90 of $50 left this month"

    @property
    def reason(self) -> str:
        return "; ".join(self.reasons)


# -- verdicts --------------------------------------------------------------------------------------


def evaluate(
    spec: VmSpec,
    role: Role,
    config: PolicyConfig,
    *,
    usage: Usage | None = None,
    channel: str | None = None,
    catalog: Catalog | None = None,
) -> Verdict:
    """The verdict on `spec` for a user with `role`.

    Without `usage`, only the per-VM limits are checked (quotas and budgets need the database);
    without `channel`, the allowed-channel rule is skipped. A deny carries the nearest allowed spec
    (priced with `catalog`, default: the packaged one) unless the channel is the problem or nothing
    would be allowed.
    """
    verdict = _judge(spec, role, config, usage, channel)
    room = headroom(role, config, usage) if usage is not None and role is not Role.VIEWER else ""
    nearest = None
    if verdict.decision == "deny" and _channel_allowed(config, channel):
        nearest = nearest_allowed(
            spec, role, config, usage, catalog if catalog is not None else default_catalog()
        )
    return Verdict(verdict.decision, verdict.reasons, nearest, room)


def _judge(
    spec: VmSpec, role: Role, config: PolicyConfig, usage: Usage | None, channel: str | None
) -> Verdict:
    if role is Role.VIEWER:
        return Verdict("deny", ("viewers cannot request VMs; ask an admin for the requester role",))
    limits = config.limits[role]
    denials: list[str] = []
    if not _channel_allowed(config, channel):
        denials.append(
            "VMs can't be requested in this channel; ask in one of the channels the admins allowed"
        )
    denials += _limit_denials(spec, limits)
    if usage is not None:
        denials += _quota_denials(spec, limits, usage)
        denials += _budget_denials(spec, limits, config, usage)
    if denials:
        return Verdict("deny", tuple(denials))

    reasons = []
    always = config.always_needs_approval
    if spec.gpu and always.gpu:
        reasons.append("GPU requested")
    if spec.os_family == "windows" and always.windows:
        reasons.append("Windows requested")
    if not spec.spot and always.spot_off:
        reasons.append("on-demand instead of spot")
    if (
        always.ttl_over_hours is not None
        and spec.ttl_hours is not None
        and spec.ttl_hours > always.ttl_over_hours
    ):
        reasons.append(f"longer than {always.ttl_over_hours:g} h")
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


def _channel_allowed(config: PolicyConfig, channel: str | None) -> bool:
    return channel is None or not config.allowed_channels or channel in config.allowed_channels


def _limit_denials(spec: VmSpec, limits: RoleLimits) -> list[str]:
    denials = []
    if spec.vcpus > limits.max_vcpus:
        denials.append(f"{spec.vcpus} vCPUs is over your limit of {limits.max_vcpus}")
    if spec.memory_gb > limits.max_memory_gb:
        denials.append(
            f"{spec.memory_gb:g} GB of memory is over your limit of {limits.max_memory_gb:g} GB"
        )
    gpus = spec.gpu.count if spec.gpu else 0
    if gpus > limits.max_gpus:
        noun = "GPU is" if gpus == 1 else "GPUs is"
        denials.append(f"{gpus} {noun} over your limit of {limits.max_gpus}")
    if spec.disk_gb > limits.max_disk_gb:
        denials.append(f"{spec.disk_gb} GB of disk is over your limit of {limits.max_disk_gb} GB")
    if spec.ttl_hours is not None and spec.ttl_hours > limits.max_ttl_hours:
        denials.append(f"{spec.ttl_hours:g} h is over your limit of {limits.max_ttl_hours:g} h")
    if spec.os_family == "windows" and not limits.windows_allowed:
        denials.append("Windows is not allowed for your role")
    return denials


def _quota_denials(spec: VmSpec, limits: RoleLimits, usage: Usage) -> list[str]:
    denials = []
    if limits.max_concurrent_vms == 0:
        denials.append("your role can't hold VMs; ask an admin for a higher role")
    elif usage.running_vms >= limits.max_concurrent_vms:
        denials.append(
            f"you already run {usage.running_vms} of your {limits.max_concurrent_vms} VMs; "
            "destroy one with /vm destroy NAME"
        )
    if usage.running_vcpus + spec.vcpus > limits.max_total_vcpus:
        left = max(0, limits.max_total_vcpus - usage.running_vcpus)
        denials.append(
            f"your VMs already use {usage.running_vcpus} of your {limits.max_total_vcpus} vCPUs, "
            f"so {left} {'is' if left == 1 else 'are'} left for this one; "
            "ask for fewer or destroy one with /vm destroy NAME"
        )
    return denials


def _budget_denials(
    spec: VmSpec, limits: RoleLimits, config: PolicyConfig, usage: Usage
) -> list[str]:
    cost = _month_cost(spec, usage)
    denials = []
    user_left = _left(limits.monthly_budget_usd, usage.month_spend_usd)
    if limits.monthly_budget_usd is not None and user_left is not None and cost > user_left:
        denials.append(
            f"this would cost ≈ {_usd(cost)} and you have {_usd(user_left)} left of your "
            f"{_usd(limits.monthly_budget_usd)} monthly budget"
        )
    team_left = _left(config.team_monthly_budget_usd, usage.team_month_spend_usd)
    if config.team_monthly_budget_usd is not None and team_left is not None and cost > team_left:
        denials.append(
            f"this would cost ≈ {_usd(cost)} and the team has {_usd(team_left)} left of its "
            f"{_usd(config.team_monthly_budget_usd)} monthly budget; ask an admin"
        )
    return denials


def _month_cost(spec: VmSpec, usage: Usage) -> float:
    """What `spec` would add to this month's spend: its total, or to month end without expiry."""
    if spec.cost.usd_total is not None:
        return spec.cost.usd_total
    return spec.cost.usd_per_hour * usage.hours_left_in_month


def _left(budget: float | None, spent: float) -> float | None:
    return None if budget is None else max(0.0, budget - spent)


def headroom(role: Role, config: PolicyConfig, usage: Usage) -> str:
    """One line for the card: what the user has left, e.g. "You have 2 of 3 VMs · 16 of 32
    vCPUs · $37.90 of $50 left this month". The team budget is added when it is the tighter one."""
    limits = config.limits[role]
    vms_left = max(0, limits.max_concurrent_vms - usage.running_vms)
    vcpus_left = max(0, limits.max_total_vcpus - usage.running_vcpus)
    parts = [
        f"{vms_left} of {limits.max_concurrent_vms} VMs",
        f"{vcpus_left} of {limits.max_total_vcpus} vCPUs",
    ]
    user_left = _left(limits.monthly_budget_usd, usage.month_spend_usd)
    team_left = _left(config.team_monthly_budget_usd, usage.team_month_spend_usd)
    if limits.monthly_budget_usd is not None and user_left is not None:
        parts.append(f"{_usd(user_left)} of {_usd(limits.monthly_budget_usd)}")
    else:
        parts.append("no personal budget")
    line = "You have " + " · ".join(parts) + " left this month"
    if (
        config.team_monthly_budget_usd is not None
        and team_left is not None
        and (user_left is None or team_left < user_left)
    ):
        line += f" (team: {_usd(team_left)} of {_usd(config.team_monthly_budget_usd)})"
    return line


def _usd(amount: float) -> str:
    cents = round(amount * 100)
    if cents % 100 == 0:
        return f"${cents // 100:,}"
    return f"${cents / 100:,.2f}"


# -- the nearest spec that would be allowed -----------------------------------------------------


def nearest_allowed(
    spec: VmSpec,
    role: Role,
    config: PolicyConfig,
    usage: Usage | None,
    catalog: Catalog,
) -> VmSpec | None:
    """The spec closest to `spec` that `evaluate` would not deny, or None if there is none.

    Keeps the name, OS, image, packages, region, disk type and spot choice. Caps vCPUs and memory
    at the role's limits (and at what the vCPU quota leaves), drops or reduces GPUs, caps the disk
    and the TTL, picks the cheapest machine type that fits with `cheapest_fit`, re-prices with
    `price_vm`, and, when the budget is the problem, cuts the TTL to what the budget pays for (whole
    hours, at least one). The result is checked against the catalog and the policy before it is
    returned; a spec that is already allowed comes back unchanged.
    """
    if role is Role.VIEWER:
        return None
    limits = config.limits[role]
    if spec.os_family == "windows" and not limits.windows_allowed:
        return None  # another OS is not "nearest": the user must ask again
    vcpu_cap = limits.max_vcpus
    if usage is not None:
        vcpu_cap = min(vcpu_cap, limits.max_total_vcpus - usage.running_vcpus)
    if vcpu_cap < 1 or limits.max_memory_gb <= 0:
        return None
    try:
        shaped = _shape(spec, limits, vcpu_cap, catalog)
        if shaped is None:
            return None
        machine, gpu = shaped
        disk_gb = min(spec.disk_gb, limits.max_disk_gb)
        ttl = spec.ttl_hours
        if ttl is not None and ttl > limits.max_ttl_hours:
            ttl = limits.max_ttl_hours
        candidate: VmSpec | None = _respec(spec, catalog, machine, gpu, disk_gb, ttl)
        if candidate is not None and usage is not None:
            candidate = _fit_budget(candidate, catalog, limits, config, usage)
        if candidate is None:
            return None
        candidate = validate_spec(candidate, catalog)
    except (CatalogError, InvalidSpec):
        return None
    if _judge(candidate, role, config, usage, None).decision == "deny":
        return None
    return candidate


def _shape(
    spec: VmSpec, limits: RoleLimits, vcpu_cap: int, catalog: Catalog
) -> tuple[MachineType, Gpu | None] | None:
    """The machine type (and GPU) to use: the spec's own if it is within the caps, else the
    cheapest that fits the capped figures; if that one is over a cap, the cheapest that fits the
    nearest shape the catalog has within the caps (vCPUs first, then memory)."""
    current = catalog.machine_type(spec.machine_type)

    def within(m: MachineType, gpu_count: int) -> bool:
        return (
            math.ceil(m.vcpus) <= vcpu_cap
            and m.memory_gb <= limits.max_memory_gb
            and m.gpu_count <= gpu_count
        )

    if spec.gpu is None or spec.gpu.count <= limits.max_gpus:
        if within(current, spec.gpu.count if spec.gpu else 0):
            return current, spec.gpu
    want_vcpus = min(spec.vcpus, vcpu_cap)
    want_memory = min(spec.memory_gb, limits.max_memory_gb)
    in_caps = {
        (min(math.ceil(m.vcpus), want_vcpus), min(m.memory_gb, want_memory))
        for m in catalog.machine_types
        if within(m, limits.max_gpus) and catalog.is_offered(m.name, spec.region)
    }
    targets = [(want_vcpus, want_memory)] + sorted(in_caps - {(want_vcpus, want_memory)})[::-1]
    gpus: list[Gpu | None] = [None]
    if spec.gpu is not None and limits.max_gpus > 0:
        top = min(spec.gpu.count, limits.max_gpus)
        gpus = [Gpu(type=spec.gpu.type, count=n) for n in range(top, 0, -1)]
    for gpu in gpus:
        for vcpus, memory in targets:
            try:
                m = cheapest_fit(
                    catalog,
                    vcpus=vcpus,
                    memory_gb=memory,
                    region=spec.region,
                    gpu_type=gpu.type if gpu else None,
                    gpu_count=gpu.count if gpu else 0,
                    spot=spec.spot,
                    windows=spec.os_family == "windows",
                )
            except CatalogError:
                continue
            if within(m, gpu.count if gpu else 0):
                if m.has_gpu and gpu is not None:
                    gpu = Gpu(type=gpu.type, count=m.gpu_count)
                return m, gpu
    return None


def _respec(
    spec: VmSpec,
    catalog: Catalog,
    machine: MachineType,
    gpu: Gpu | None,
    disk_gb: int,
    ttl_hours: float | None,
) -> VmSpec:
    cost = price_vm(
        catalog,
        machine.name,
        spec.region,
        disk_gb,
        spec.disk_type,
        spec.spot,
        spec.os_family,
        ttl_hours,
        gpu=gpu,
    )
    return spec.model_copy(
        update={
            "machine_type": machine.name,
            "vcpus": max(1, math.ceil(machine.vcpus)),
            "memory_gb": machine.memory_gb,
            "gpu": gpu,
            "disk_gb": disk_gb,
            "ttl_hours": ttl_hours,
            "cost": cost,
        }
    )


def _fit_budget(
    spec: VmSpec, catalog: Catalog, limits: RoleLimits, config: PolicyConfig, usage: Usage
) -> VmSpec | None:
    lefts = [
        left
        for left in (
            _left(limits.monthly_budget_usd, usage.month_spend_usd),
            _left(config.team_monthly_budget_usd, usage.team_month_spend_usd),
        )
        if left is not None
    ]
    if not lefts or _month_cost(spec, usage) <= min(lefts):
        return spec
    hours = math.floor(min(lefts) / spec.cost.usd_per_hour) if spec.cost.usd_per_hour else 0
    if hours < 1:
        return None
    ttl = float(hours) if spec.ttl_hours is None else min(spec.ttl_hours, float(hours))
    machine = catalog.machine_type(spec.machine_type)
    return _respec(spec, catalog, machine, spec.gpu, spec.disk_gb, ttl)


# -- approvals -------------------------------------------------------------------------------------


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


# -- the policy file -------------------------------------------------------------------------------


def load_policy(path: str | Path | None = None) -> PolicyConfig:
    """Read a policy file; None reads the shipped `default_policy.yaml`.

    Keys left out keep the shipped defaults. Raises PolicyError naming the file, the key and what
    is wrong with it.
    """
    shipped_text = resources.files("provisioning").joinpath(DEFAULT_POLICY_FILE).read_text("utf-8")
    shipped = _parse_yaml(shipped_text, DEFAULT_POLICY_FILE)
    if path is None:
        return _to_config(_validate(shipped, DEFAULT_POLICY_FILE))
    where = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PolicyError(f"{where}: policy file not found; check the path.") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise PolicyError(f"{where}: cannot read the policy file ({exc}).") from None
    return _to_config(_validate(_merge(shipped, _parse_yaml(text, where)), where))


def _parse_yaml(text: str, where: str) -> dict[str, Any]:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" line {mark.line + 1}, column {mark.column + 1}:" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "not valid YAML"
        raise PolicyError(f"{where}:{at} cannot parse the YAML ({problem}).") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise PolicyError(
            f"{where}: the policy must be a mapping of keys (roles, team, auto_approve, ...), "
            f"got {_shown(data)}."
        )
    return data


def _merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


# The file's schema. Each field type checks its value with a message written for people.


def _whole_number(value: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError("must be a whole number ≥ 0")
    if isinstance(value, float) and not value.is_integer():
        raise ValueError("must be a whole number ≥ 0")
    if value < 0:
        raise ValueError("must be a whole number ≥ 0")
    return int(value)


def _amount(value: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError("must be a number ≥ 0")
    if value < 0:
        raise ValueError("must be a number ≥ 0")
    return float(value)


def _optional_amount(value: Any) -> Any:
    if value is None:
        return None
    try:
        return _amount(value)
    except ValueError:
        raise ValueError("must be a number ≥ 0, or null for no limit") from None


def _hours(value: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError("must be a number of hours > 0")
    if value <= 0:
        raise ValueError("must be a number of hours > 0")
    return float(value)


def _optional_hours(value: Any) -> Any:
    if value is None:
        return None
    try:
        return _hours(value)
    except ValueError:
        raise ValueError("must be a number of hours > 0, or null for none") from None


def _flag(value: Any) -> Any:
    if not isinstance(value, bool):
        raise ValueError("must be true or false")
    return value


def _expire_action(value: Any) -> Any:
    if value not in ("destroy", "stop"):
        raise ValueError("must be destroy or stop")
    return value


_CHANNEL_ID = re.compile(r"[CG][A-Z0-9]{2,}")


def _channel_list(value: Any) -> Any:
    if value is None:
        return []
    if not isinstance(value, list):
        raise ValueError("must be a list of Slack channel ids, like [C0123ABCD]; [] = anywhere")
    return value


def _channel_id(value: Any) -> Any:
    if not isinstance(value, str) or not _CHANNEL_ID.fullmatch(value):
        raise ValueError("must be a Slack channel id like C0123ABCD (not a #name)")
    return value


WholeNumber = Annotated[int, BeforeValidator(_whole_number)]
Amount = Annotated[float, BeforeValidator(_amount)]
OptionalAmount = Annotated[float | None, BeforeValidator(_optional_amount)]
Hours = Annotated[float, BeforeValidator(_hours)]
OptionalHours = Annotated[float | None, BeforeValidator(_optional_hours)]
Flag = Annotated[bool, BeforeValidator(_flag)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _RoleSection(_Section):
    max_vcpus: WholeNumber
    max_memory_gb: Amount
    max_gpus: WholeNumber
    max_disk_gb: WholeNumber
    max_ttl_hours: Amount
    max_concurrent_vms: WholeNumber
    max_total_vcpus: WholeNumber
    windows_allowed: Flag
    monthly_budget_usd: OptionalAmount


class _RolesSection(_Section):
    viewer: _RoleSection
    requester: _RoleSection
    approver: _RoleSection
    admin: _RoleSection


class _TeamSection(_Section):
    monthly_budget_usd: OptionalAmount


class _AutoApproveSection(_Section):
    max_usd_per_hour: Amount
    max_usd_total: Amount


class _AlwaysSection(_Section):
    gpu: Flag
    windows: Flag
    spot_off: Flag
    ttl_over_hours: OptionalHours


class _ApprovalsSection(_Section):
    expire_after_hours: Hours
    remind_after_hours: OptionalHours


class _VmExpirySection(_Section):
    action: Annotated[ExpireAction, BeforeValidator(_expire_action)]


class _PolicyFile(_Section):
    roles: _RolesSection
    team: _TeamSection
    auto_approve: _AutoApproveSection
    always_needs_approval: _AlwaysSection
    allowed_channels: Annotated[
        tuple[Annotated[str, BeforeValidator(_channel_id)], ...], BeforeValidator(_channel_list)
    ]
    approvals: _ApprovalsSection
    vm_expiry: _VmExpirySection


def _validate(data: dict[str, Any], where: str) -> _PolicyFile:
    try:
        return _PolicyFile.model_validate(data)
    except ValidationError as exc:
        problems = [_problem(error) for error in exc.errors()]
        shown = "; ".join(problems[:5]) + (
            f" (and {len(problems) - 5} more)" if problems[5:] else ""
        )
        raise PolicyError(f"{where}: {shown}.") from None


def _problem(error: Any) -> str:
    loc = ".".join(str(part) for part in error["loc"])
    kind = error["type"]
    if kind == "value_error":
        return f"{loc} {error['ctx']['error']}, got {_shown(error['input'])}"
    if kind == "extra_forbidden":
        parent = _PolicyFile.model_fields
        model: Any = _PolicyFile
        for part in error["loc"][:-1]:
            model = parent[str(part)].annotation
            parent = model.model_fields
        known = ", ".join(parent)
        return f"{loc} is not a known key; expected one of {known}"
    if kind == "model_type":
        return f"{loc or 'the policy'} must be a mapping of keys, got {_shown(error['input'])}"
    if kind == "missing":
        return f"{loc} is missing"
    return f"{loc}: {error['msg']}"


def _shown(value: Any) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return repr(value)


def _to_config(policy: _PolicyFile) -> PolicyConfig:
    def limits(section: _RoleSection) -> RoleLimits:
        return RoleLimits(**section.model_dump())

    return PolicyConfig(
        auto_approve_usd_per_hour=policy.auto_approve.max_usd_per_hour,
        auto_approve_usd_total=policy.auto_approve.max_usd_total,
        limits={role: limits(getattr(policy.roles, role.value)) for role in Role},
        team_monthly_budget_usd=policy.team.monthly_budget_usd,
        always_needs_approval=ApprovalTriggers(**policy.always_needs_approval.model_dump()),
        allowed_channels=frozenset(policy.allowed_channels),
        pending_expiry_hours=policy.approvals.expire_after_hours,
        pending_reminder_hours=policy.approvals.remind_after_hours,
        vm_expiry_action=policy.vm_expiry.action,
    )
