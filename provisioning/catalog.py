"""The catalog: which machine types, regions, disks, images and GPUs exist, and what they cost.

Everything here comes from the CSV files in `provisioning/data/` (see `data/SOURCE.md`). The
catalog is read-only once loaded; `default_catalog()` loads the packaged data once, on first use.
"""

from __future__ import annotations

import csv
import functools
import io
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from types import MappingProxyType
from typing import Literal

from provisioning.spec import Cost, Gpu, VmSpec

OsFamily = Literal["linux", "windows"]

HOURS_PER_MONTH = 730.0
"""Google bills disks per GB-month and counts a month as 730 hours."""

# Families that are cheap, current and fine for everyday work; picked before older (n1) or
# premium (c3) ones when nothing asks for a GPU.
PREFERRED_FAMILIES = frozenset({"e2", "n2", "n2d", "t2d", "n4"})
# Shapes that carry hardware nobody asked for (local SSD, a whole host): last resort only.
_SPECIAL_SUFFIXES = ("-lssd", "-metal")


class CatalogError(Exception):
    """A lookup the catalog cannot answer. The message is a sentence a user can act on."""


@dataclass(frozen=True, slots=True)
class MachineType:
    name: str
    vcpus: float  # shared-core types have fractions, e.g. e2-micro has 0.25
    memory_gb: float
    gpu_type: str | None
    gpu_count: int
    family: str

    @property
    def has_gpu(self) -> bool:
        return self.gpu_count > 0


@dataclass(frozen=True, slots=True)
class Region:
    id: str
    location: str  # how the price list names it: a city, or a country for some
    city: str = ""
    country: str = ""
    area: str = ""  # a continent, or "Middle East"


@dataclass(frozen=True, slots=True)
class GpuModel:
    gpu_type: str
    label: str
    vram_gb: float


@dataclass(frozen=True, slots=True)
class Image:
    family: str
    project: str
    os_family: OsFamily
    label: str
    min_disk_gb: int


@dataclass(frozen=True, slots=True)
class MachinePrice:
    machine_type: str
    region: str
    usd_per_hour: float
    usd_per_hour_spot: float
    windows_license_usd_per_hour: float


@dataclass(frozen=True, slots=True)
class DiskPrice:
    disk_type: str
    region: str
    usd_per_gb_month: float


@dataclass(frozen=True, slots=True)
class AttachableGpu:
    """A GPU that is attached to a machine of `machine_family` rather than bundled with it."""

    gpu_type: str
    machine_family: str
    region: str
    usd_per_gpu_hour: float
    counts: tuple[int, ...]


class Catalog:
    """Read-only view of the reference data, indexed for lookups."""

    def __init__(
        self,
        *,
        machine_types: Iterable[MachineType],
        regions: Iterable[Region],
        machine_prices: Iterable[MachinePrice],
        disk_prices: Iterable[DiskPrice],
        images: Iterable[Image] = (),
        attachable_gpus: Iterable[AttachableGpu] = (),
        gpus: Iterable[GpuModel] = (),
    ) -> None:
        self._machine_types = {m.name: m for m in machine_types}
        self._regions = {r.id: r for r in regions}
        self._images = {i.family: i for i in images}
        self._prices: dict[tuple[str, str], MachinePrice] = {}
        self._offered: dict[str, set[str]] = {name: set() for name in self._machine_types}
        for p in machine_prices:
            if p.machine_type not in self._machine_types:
                raise CatalogError(f"Price row for unknown machine type {p.machine_type}.")
            if p.region not in self._regions:
                raise CatalogError(f"Price row for unknown region {p.region}.")
            self._prices[(p.machine_type, p.region)] = p
            self._offered[p.machine_type].add(p.region)
        self._disk_prices = {(d.disk_type, d.region): d.usd_per_gb_month for d in disk_prices}
        self._attachable = {(g.gpu_type, g.region): g for g in attachable_gpus}
        self._machine_tuple = tuple(self._machine_types.values())
        self._gpu_types = frozenset(
            {m.gpu_type for m in self._machine_tuple if m.gpu_type}
            | {g.gpu_type for g in self._attachable.values()}
        )
        self._gpus = {g.gpu_type: g for g in gpus}
        unknown_gpus = set(self._gpus) - self._gpu_types
        if unknown_gpus:
            raise CatalogError(
                f"GPU rows for GPUs nothing offers: {', '.join(sorted(unknown_gpus))}."
            )
        gpu_regions: dict[str, set[str]] = {g: set() for g in self._gpu_types}
        for mt_name, region in self._prices:
            gpu_type = self._machine_types[mt_name].gpu_type
            if gpu_type:
                gpu_regions[gpu_type].add(region)
        for gpu_type, region in self._attachable:
            gpu_regions[gpu_type].add(region)
        self._gpu_regions = {g: frozenset(r) for g, r in gpu_regions.items()}

    @classmethod
    def load(cls, data_dir: Path | Traversable | None = None) -> Catalog:
        """Read the CSV files from `data_dir` (default: the packaged `provisioning/data`)."""
        root = data_dir if data_dir is not None else resources.files("provisioning") / "data"
        machine_types: dict[str, MachineType] = {}
        geo = {r["region"]: r for r in _rows(root, "region_geo.csv")}
        regions = [
            Region(
                r["region"],
                r["location"],
                city=geo.get(r["region"], {}).get("city", ""),
                country=geo.get(r["region"], {}).get("country", ""),
                area=geo.get(r["region"], {}).get("area", ""),
            )
            for r in _rows(root, "gce_regions.csv")
        ]
        # region_geo.csv's row order is the preference order for places with several regions.
        order = {region: i for i, region in enumerate(geo)}
        regions.sort(key=lambda r: order.get(r.id, len(order)))
        prices: list[MachinePrice] = []
        for row in _rows(root, "gce_machine_prices.csv"):
            m = MachineType(
                name=row["machine_type"],
                vcpus=float(row["vcpus"]),
                memory_gb=float(row["memory_gb"]),
                gpu_type=row["gpu_type"] or None,
                gpu_count=int(row["gpu_count"] or 0),
                family=row["machine_type"].split("-", 1)[0],
            )
            if machine_types.setdefault(m.name, m) != m:
                raise CatalogError(f"Machine type {m.name} has different shapes in different rows.")
            prices.append(
                MachinePrice(
                    machine_type=m.name,
                    region=row["region"],
                    usd_per_hour=float(row["usd_per_hour"]),
                    usd_per_hour_spot=float(row["usd_per_hour_spot"]),
                    windows_license_usd_per_hour=float(row["windows_license_usd_per_hour"] or 0),
                )
            )
        disks = [
            DiskPrice(r["disk_type"], r["region"], float(r["usd_per_gb_month"]))
            for r in _rows(root, "gce_disk_prices.csv")
        ]
        images = [
            Image(
                family=r["family"],
                project=r["project"],
                os_family=_os_family(r["os_family"]),
                label=r["label"],
                min_disk_gb=int(r["min_disk_gb"]),
            )
            for r in _rows(root, "images.csv")
        ]
        gpus = [
            AttachableGpu(
                gpu_type=r["gpu_type"],
                machine_family=r["machine_family"],
                region=r["region"],
                usd_per_gpu_hour=float(r["usd_per_gpu_hour"]),
                counts=tuple(int(c) for c in r["counts"].split("|")),
            )
            for r in _rows(root, "attachable_gpus.csv")
        ]
        models = [
            GpuModel(r["gpu_type"], r["label"], float(r["vram_gb"]))
            for r in _rows(root, "gpus.csv")
        ]
        return cls(
            machine_types=machine_types.values(),
            regions=regions,
            machine_prices=prices,
            disk_prices=disks,
            images=images,
            attachable_gpus=gpus,
            gpus=models,
        )

    # -- what exists ---------------------------------------------------------------------

    @property
    def machine_types(self) -> tuple[MachineType, ...]:
        return self._machine_tuple

    @property
    def regions(self) -> tuple[Region, ...]:
        """Every region, in preference order (see data/SOURCE.md, region_geo.csv)."""
        return tuple(self._regions.values())

    def region(self, region: str) -> Region:
        self.region_location(region)  # raises for unknown regions
        return self._regions[region]

    @property
    def gpus(self) -> tuple[GpuModel, ...]:
        """GPU models with their VRAM, smallest and cheapest first."""
        return tuple(self._gpus.values())

    def gpu(self, gpu_type: str) -> GpuModel:
        try:
            return self._gpus[gpu_type]
        except KeyError:
            known = ", ".join(sorted(self._gpu_types))
            raise CatalogError(
                f"{gpu_type} isn't a GPU in the catalog; choose one of {known}."
            ) from None

    def gpu_regions(self, gpu_type: str) -> frozenset[str]:
        """The regions where `gpu_type` can be had, bundled or attached (empty when unknown)."""
        return self._gpu_regions.get(gpu_type, frozenset())

    @property
    def images(self) -> tuple[Image, ...]:
        return tuple(self._images.values())

    @property
    def disk_types(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(disk for disk, _ in self._disk_prices))

    @property
    def attachable_gpus(self) -> tuple[AttachableGpu, ...]:
        return tuple(self._attachable.values())

    @property
    def gpu_types(self) -> frozenset[str]:
        """Every GPU type the catalog has, bundled or attachable."""
        return self._gpu_types

    @property
    def prices(self) -> Mapping[tuple[str, str], MachinePrice]:
        """Machine prices keyed by (machine type, region)."""
        return MappingProxyType(self._prices)

    def machine_type(self, name: str) -> MachineType:
        try:
            return self._machine_types[name]
        except KeyError:
            raise CatalogError(
                f"{name} isn't a machine type in the catalog; try one like e2-standard-4 "
                "or n2-standard-8, or just say how many vCPUs and how much memory you need."
            ) from None

    def is_offered(self, machine_type: str, region: str) -> bool:
        return (machine_type, region) in self._prices

    def has_machine_type(self, name: str) -> bool:
        return name in self._machine_types

    def has_region(self, region: str) -> bool:
        return region in self._regions

    def region_location(self, region: str) -> str:
        try:
            return self._regions[region].location
        except KeyError:
            raise CatalogError(
                f"{region} isn't a region in the catalog; use a region id like us-central1 "
                "or europe-west2."
            ) from None

    def offered_in(self, machine_type: str) -> set[str]:
        """The regions where `machine_type` has a price (an empty set for unknown types)."""
        return set(self._offered.get(machine_type, ()))

    def image(self, family: str) -> Image:
        try:
            return self._images[family]
        except KeyError:
            labels = ", ".join(i.label for i in self._images.values())
            raise CatalogError(
                f"{family} isn't an image family in the catalog; choose one of: {labels}."
            ) from None

    def attachable_gpu(self, gpu_type: str, region: str) -> AttachableGpu:
        gpu = self._attachable.get((gpu_type, region))
        if gpu is not None:
            return gpu
        where = sorted(r for g, r in self._attachable if g == gpu_type)
        if not where:
            raise CatalogError(f"{gpu_type} can't be attached to a machine type in the catalog.")
        raise CatalogError(
            f"{gpu_type} is only offered in {_region_list(self, where)}; "
            f"pick that region or another GPU."
        )

    # -- prices ---------------------------------------------------------------------------

    def machine_price(self, machine_type: str, region: str) -> MachinePrice:
        price = self._prices.get((machine_type, region))
        if price is not None:
            return price
        self.machine_type(machine_type)  # raises for unknown types
        self.region_location(region)  # raises for unknown regions
        where = sorted(self._offered[machine_type])
        if not where:
            raise CatalogError(f"{machine_type} isn't offered in any region of the catalog.")
        raise CatalogError(
            f"{machine_type} isn't offered in {region} ({self._regions[region].location}); "
            f"it is offered in {_region_list(self, where)}."
        )

    def price_per_hour(
        self, machine_type: str, region: str, *, spot: bool = False, windows: bool = False
    ) -> float:
        """USD per hour for the machine, plus the Windows Server license when `windows`."""
        p = self.machine_price(machine_type, region)
        hourly = p.usd_per_hour_spot if spot else p.usd_per_hour
        return hourly + (p.windows_license_usd_per_hour if windows else 0.0)

    def disk_price_per_gb_hour(self, disk_type: str, region: str) -> float:
        per_month = self._disk_prices.get((disk_type, region))
        if per_month is None:
            types = self.disk_types
            if disk_type not in types:
                raise CatalogError(
                    f"{disk_type} isn't a disk type in the catalog; use one of {', '.join(types)}."
                )
            raise CatalogError(f"{disk_type} has no price in {region}; pick another region.")
        return per_month / HOURS_PER_MONTH


def _rows(root: Path | Traversable, name: str) -> list[dict[str, str]]:
    text = root.joinpath(name).read_text(encoding="utf-8")
    return [
        {k.strip(): (v or "").strip() for k, v in row.items()}
        for row in csv.DictReader(io.StringIO(text, newline=""))
    ]


def _os_family(value: str) -> OsFamily:
    if value == "linux":
        return "linux"
    if value == "windows":
        return "windows"
    raise CatalogError(f"Unknown OS family {value!r} in images.csv.")


def _region_list(catalog: Catalog, regions: list[str], limit: int = 5) -> str:
    named = [f"{r} ({catalog.region_location(r)})" for r in regions[:limit]]
    more = len(regions) - limit
    return ", ".join(named) + (f" and {more} more" if more > 0 else "")


@functools.lru_cache(maxsize=1)
def default_catalog() -> Catalog:
    """The packaged catalog, loaded on first call and shared afterwards."""
    return Catalog.load()


# -- pricing and fitting (pure functions over a catalog) -----------------------------------


def price_vm(
    catalog: Catalog,
    machine_type: str,
    region: str,
    disk_gb: int,
    disk_type: str,
    spot: bool,
    os_family: OsFamily,
    ttl_hours: float | None,
    *,
    gpu: Gpu | None = None,
) -> Cost:
    """Price a VM per hour and for its TTL: machine + Windows license + disk (+ attached GPUs).

    `gpu` only adds a price when the GPU is attached (n1 + T4); GPUs bundled with the machine type
    are already in its price. Spot VMs pay the on-demand rate for attached GPUs, since no spot rate
    is known (an upper bound).
    """
    if os_family not in ("linux", "windows"):
        raise CatalogError(f"OS family must be linux or windows, not {os_family!r}.")
    if disk_gb <= 0:
        raise CatalogError("The boot disk needs a size above 0 GB.")
    if ttl_hours is not None and not ttl_hours > 0:
        raise CatalogError("The time to live must be more than 0 hours.")
    mt = catalog.machine_type(machine_type)
    hourly = catalog.price_per_hour(machine_type, region, spot=spot, windows=os_family == "windows")
    hourly += disk_gb * catalog.disk_price_per_gb_hour(disk_type, region)
    if gpu is not None:
        if mt.has_gpu:
            if (gpu.type, gpu.count) != (mt.gpu_type, mt.gpu_count):
                raise CatalogError(
                    f"{machine_type} comes with {mt.gpu_count}× {mt.gpu_type}; "
                    f"it can't carry {gpu.count}× {gpu.type}."
                )
        else:
            hourly += gpu.count * _attached_gpu_price(catalog, mt, gpu.type, gpu.count, region)
    total = None if ttl_hours is None else round(hourly * ttl_hours, 4)
    return Cost(usd_per_hour=round(hourly, 4), usd_total=total)


def price_spec(catalog: Catalog, spec: VmSpec) -> Cost:
    """Re-price a spec, e.g. after the user changed it in the Modify modal."""
    return price_vm(
        catalog,
        spec.machine_type,
        spec.region,
        spec.disk_gb,
        spec.disk_type,
        spec.spot,
        spec.os_family,
        spec.ttl_hours,
        gpu=spec.gpu,
    )


def _attached_gpu_price(
    catalog: Catalog, mt: MachineType, gpu_type: str, count: int, region: str
) -> float:
    gpu = catalog.attachable_gpu(gpu_type, region)
    if mt.family != gpu.machine_family:
        raise CatalogError(
            f"{gpu_type} attaches only to {gpu.machine_family} machine types, not {mt.name}."
        )
    if count not in gpu.counts:
        counts = ", ".join(str(c) for c in gpu.counts)
        raise CatalogError(f"{gpu_type} comes in counts of {counts} per VM, not {count}.")
    return gpu.usd_per_gpu_hour


def cheapest_fit(
    catalog: Catalog,
    *,
    vcpus: float,
    memory_gb: float,
    region: str,
    gpu_type: str | None = None,
    gpu_count: int = 0,
    spot: bool = False,
    windows: bool = False,
) -> MachineType:
    """The cheapest machine type offered in `region` with at least `vcpus` and `memory_gb`.

    Without a GPU, GPU types are never chosen and the preferred general-purpose families win over
    others whatever the price; with a GPU, types bundling at least `gpu_count` of `gpu_type` are
    considered, or, for an attachable GPU, the family it attaches to. Raises CatalogError naming
    what is available when nothing fits.
    """
    catalog.region_location(region)  # raises for unknown regions
    if gpu_type is None:
        kind = "general-purpose machine type"
        candidates = [m for m in catalog.machine_types if not m.has_gpu]
    elif gpu_type in {m.gpu_type for m in catalog.machine_types}:
        gpu_count = max(gpu_count, 1)
        kind = f"machine type with {gpu_count}× {gpu_type}"
        candidates = [
            m for m in catalog.machine_types if m.gpu_type == gpu_type and m.gpu_count >= gpu_count
        ]
        if not candidates:
            most = max(m.gpu_count for m in catalog.machine_types if m.gpu_type == gpu_type)
            raise CatalogError(f"A VM can have at most {most}× {gpu_type}; ask for fewer.")
    elif gpu_type in catalog.gpu_types:
        attachable = catalog.attachable_gpu(gpu_type, region)
        if max(gpu_count, 1) not in attachable.counts:
            counts = ", ".join(str(c) for c in attachable.counts)
            raise CatalogError(f"{gpu_type} comes in counts of {counts} per VM, not {gpu_count}.")
        kind = f"{attachable.machine_family} machine type for {gpu_type}"
        candidates = [
            m
            for m in catalog.machine_types
            if m.family == attachable.machine_family and not m.has_gpu
        ]
    else:
        known = ", ".join(sorted(catalog.gpu_types))
        raise CatalogError(f"{gpu_type} isn't a GPU in the catalog; choose one of {known}.")

    location = f"{region} ({catalog.region_location(region)})"
    offered = [m for m in candidates if catalog.is_offered(m.name, region)]
    if not offered:
        elsewhere = sorted({r for m in candidates for r in catalog.offered_in(m.name)})
        hint = f"try {_region_list(catalog, elsewhere)}" if elsewhere else ""
        raise CatalogError(f"No {kind} is offered in {location}; {hint or 'pick another region'}.")
    fits = [m for m in offered if m.vcpus >= vcpus and m.memory_gb >= memory_gb]
    if not fits:
        raise CatalogError(_nothing_fits(offered, kind, location, vcpus, memory_gb))

    def key(m: MachineType) -> tuple[int, float, float, float, str]:
        price = catalog.price_per_hour(m.name, region, spot=spot, windows=windows)
        return (_tier(m, gpu_type is not None), price, m.vcpus, m.memory_gb, m.name)

    return min(fits, key=key)


def _tier(m: MachineType, gpu_wanted: bool) -> int:
    if m.name.endswith(_SPECIAL_SUFFIXES):
        return 2
    if gpu_wanted or m.family in PREFERRED_FAMILIES:
        return 0
    return 1


def _nothing_fits(
    offered: list[MachineType], kind: str, location: str, vcpus: float, memory_gb: float
) -> str:
    most_cpu = max(offered, key=lambda m: (m.vcpus, m.memory_gb))
    most_mem = max(offered, key=lambda m: (m.memory_gb, m.vcpus))
    if most_cpu.vcpus < vcpus:
        return (
            f"No {kind} in {location} has {_num(vcpus)} vCPUs; the largest is {most_cpu.name} "
            f"with {_num(most_cpu.vcpus)} vCPUs and {_num(most_cpu.memory_gb)} GB."
        )
    if most_mem.memory_gb < memory_gb:
        return (
            f"No {kind} in {location} has {_num(memory_gb)} GB of memory; the largest is "
            f"{most_mem.name} with {_num(most_mem.memory_gb)} GB and {_num(most_mem.vcpus)} vCPUs."
        )
    return (
        f"No {kind} in {location} has both {_num(vcpus)} vCPUs and {_num(memory_gb)} GB; "
        f"ask for fewer vCPUs or less memory."
    )


def _num(value: float) -> str:
    if math.isfinite(value) and value == int(value):
        return str(int(value))
    return f"{value:g}"
