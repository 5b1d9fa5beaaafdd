"""Region selection: where a VM goes when its turn comes.

`rank_regions` is the decision, a pure function: the regions where the VM may go, best first.
`RegionChooser` is the imperative shell that gathers what the decision needs (vCPUs in use from
the database, the cloud's CPUS quota when the backend can tell) and turns "nowhere" into a
sentence.

The rules, from the seed and made stricter:
- candidates are the request's own region, then the other regions of its geography in priority
  order, then the rest of the priority list;
- a candidate must offer the machine type (and so its GPU), stay within its vCPU cap (default
  8) and within the cloud's free CPUS quota where that is known;
- when none does, the fallback region takes the VM whatever the caps say, provided it offers
  the machine type and has quota; when even that fails the list is empty.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal, Protocol, runtime_checkable

from sqlalchemy import select
from sqlalchemy.orm import Session

from db.models import Vm, VmRequest, VmStatus
from provisioning.catalog import Catalog

log = logging.getLogger(__name__)

# VMs whose vCPUs count against a region's cap: placed, and not gone.
PLACED = (
    VmStatus.PROVISIONING,
    VmStatus.RUNNING,
    VmStatus.STOPPING,
    VmStatus.STOPPED,
    VmStatus.DESTROYING,
)

# Regions whose ids start differently but sit on one continent.
_GEOGRAPHY = {"us": "north-america", "northamerica": "north-america"}


def geography(region: str) -> str:
    """The part of the world a region is in: "europe" for europe-west2, and so on."""
    prefix = region.split("-", 1)[0]
    return _GEOGRAPHY.get(prefix, prefix)


@dataclass(frozen=True)
class Demand:
    """What the VM needs. `offered` is every region where its machine type (with its GPU) can
    be had; a GPU type is only ever offered where that GPU exists."""

    vcpus: float
    offered: frozenset[str]
    gpu_type: str | None = None


@dataclass(frozen=True)
class Usage:
    """vCPUs our own VMs use per region, and the cloud's free CPUS quota where known."""

    vcpus: Mapping[str, float] = field(default_factory=dict)
    quota_free: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Preferences:
    priority: tuple[str, ...]
    fallback: str
    requested: str | None = None
    default_cap: int = 8
    caps: Mapping[str, int] = field(default_factory=dict)

    def cap(self, region: str) -> int:
        return self.caps.get(region, self.default_cap)


@dataclass(frozen=True)
class Region:
    id: str
    why: Literal["requested", "nearby", "priority", "fallback"]
    vcpus_after: float  # our vCPUs in the region once this VM is there


def candidates(preferences: Preferences) -> list[tuple[str, str]]:
    """Regions in the order they are tried, with why each is on the list."""
    order: dict[str, str] = {}
    requested = preferences.requested
    if requested:
        order[requested] = "requested"
        home = geography(requested)
        for region in preferences.priority:
            if geography(region) == home:
                order.setdefault(region, "nearby")
    for region in preferences.priority:
        order.setdefault(region, "priority")
    return list(order.items())


def rank_regions(demand: Demand, usage: Usage, preferences: Preferences) -> list[Region]:
    """Every region the VM may go to, best first; empty when it fits nowhere, not even in the
    fallback. Never a region over its cap (the fallback aside), over its known quota, or
    without the machine type or GPU. The same inputs always give the same list."""

    def fits_quota(region: str) -> bool:
        free = usage.quota_free.get(region)
        return free is None or free >= demand.vcpus

    ranked: list[Region] = []
    for region, why in candidates(preferences):
        after = usage.vcpus.get(region, 0.0) + demand.vcpus
        if region in demand.offered and after <= preferences.cap(region) and fits_quota(region):
            ranked.append(Region(region, why, after))  # type: ignore[arg-type]
    fallback = preferences.fallback
    if not ranked and fallback in demand.offered and fits_quota(fallback):
        ranked.append(Region(fallback, "fallback", usage.vcpus.get(fallback, 0.0) + demand.vcpus))
    return ranked


def explain_nowhere(demand: Demand, usage: Usage, preferences: Preferences) -> str:
    """Why `rank_regions` came back empty, as a sentence an admin or requester can act on."""
    what = f"{demand.vcpus:g} vCPUs" + (f" with {demand.gpu_type}" if demand.gpu_type else "")
    fallback = preferences.fallback
    tried = [region for region, _ in candidates(preferences)]
    if fallback not in tried:
        tried.append(fallback)
    offered = [r for r in tried if r in demand.offered]
    if not offered:
        where = ", ".join(sorted(demand.offered)[:5]) or "no region we know"
        return (
            f"No region we use offers {what} (tried {', '.join(tried)}); it is offered in "
            f"{where}. Ask an admin to add one of those to VMBOT_REGION_PRIORITY."
        )
    full = []
    for region in offered:
        free = usage.quota_free.get(region)
        if free is not None and free < demand.vcpus:
            full.append(f"{region} has {free:g} vCPUs of quota left")
        else:
            full.append(
                f"{region} is at {usage.vcpus.get(region, 0.0):g}/{preferences.cap(region)}"
            )
    return (
        f"Every region is full for {what}: {'; '.join(full)}. Destroy a VM you no longer "
        f"need, or ask an admin to raise the caps (VMBOT_REGION_CAPS) or the project's quota."
    )


# -- the imperative shell ---------------------------------------------------------------


@runtime_checkable
class CpuQuota(Protocol):
    def cpu_quota(self, region: str) -> tuple[float, float] | None:
        """The region's CPUS quota as (limit, usage), or None when it cannot be read."""
        ...


class NoRegion(Exception):
    """No region can take the VM; the message says why and what to do."""


def vcpus_in_use(session: Session, *, exclude_vm: int | None = None) -> dict[str, float]:
    """vCPUs of our placed VMs, per region, read from the database."""
    rows = session.execute(
        select(Vm.id, Vm.region, VmRequest.spec)
        .join(VmRequest, VmRequest.id == Vm.request_id)
        .where(Vm.status.in_(PLACED))
    )
    used: dict[str, float] = {}
    for vm_id, region, spec in rows:
        if vm_id == exclude_vm:
            continue
        used[region] = used.get(region, 0.0) + float(spec.get("vcpus", 0))
    return used


@dataclass
class RegionChooser:
    catalog: Catalog
    priority: tuple[str, ...]
    fallback: str
    default_cap: int = 8
    caps: Mapping[str, int] = field(default_factory=dict)
    quota: CpuQuota | None = None

    def demand(self, machine_type: str, vcpus: float, gpu_type: str | None) -> Demand:
        offered = self.catalog.offered_in(machine_type)
        if gpu_type and self.catalog.has_machine_type(machine_type):
            if not self.catalog.machine_type(machine_type).has_gpu:
                # An attached GPU (T4 on n1) exists only where the catalog lists it.
                attachable = self.catalog.attachable_gpus
                offered &= {g.region for g in attachable if g.gpu_type == gpu_type}
        return Demand(vcpus=vcpus, offered=frozenset(offered), gpu_type=gpu_type)

    def preferences(self, requested: str | None) -> Preferences:
        return Preferences(
            priority=self.priority,
            fallback=self.fallback,
            requested=requested,
            default_cap=self.default_cap,
            caps=dict(self.caps),
        )

    def _quota_free(self, regions: Iterable[str]) -> dict[str, float]:
        if self.quota is None:
            return {}
        free: dict[str, float] = {}
        for region in regions:
            found = self.quota.cpu_quota(region)
            if found is not None:
                limit, used = found
                free[region] = limit - used
        return free

    def choose(
        self,
        demand: Demand,
        requested: str | None,
        in_use: Callable[[], dict[str, float]],
    ) -> Region:
        preferences = self.preferences(requested)
        regions = [r for r, _ in candidates(preferences)] + [self.fallback]
        offered = [r for r in dict.fromkeys(regions) if r in demand.offered]
        usage = Usage(vcpus=in_use(), quota_free=self._quota_free(offered))
        ranked = rank_regions(demand, usage, preferences)
        if not ranked:
            raise NoRegion(explain_nowhere(demand, usage, preferences))
        return ranked[0]
