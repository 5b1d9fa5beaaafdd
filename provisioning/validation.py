"""Server-side validation of a VmSpec, whatever produced it (rules engine, LLM or a form).

`validate_spec` is the one gate between an advisor and the rest of the system: the rules and the
LLM advisors both run their output through it, so a model can never talk the bot into a spec the
rules engine could not have made. It checks the spec against the catalog, not against the text it
came from, so it can be run again at any time (e.g. after the catalog changed).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator

from pydantic import ValidationError

from provisioning.catalog import Catalog, CatalogError, MachineType, price_spec
from provisioning.errors import DomainError
from provisioning.recipes import RECIPES_BY_NAME, UnknownRecipe, with_requirements
from provisioning.spec import VmSpec

# GCE resource names: RFC 1035 labels, lower case, at most 63 characters.
GCE_NAME_RE = re.compile(r"[a-z](?:[-a-z0-9]{0,61}[a-z0-9])?")
MIN_DISK_GB = 10
MAX_DISK_GB = 65536
MIN_TTL_HOURS = 1 / 60
MAX_TTL_HOURS = 24 * 90
_COST_TOLERANCE_USD = 1e-3


class InvalidSpec(DomainError):
    """The spec breaks a rule of the catalog; the message names what and how to fix it."""


def validate_spec(spec: VmSpec, catalog: Catalog) -> VmSpec:
    """Return `spec` unchanged if it is servable as it stands, else raise InvalidSpec.

    Guarantees on return: the name is a valid GCE name; the machine type exists, is offered in the
    region, and the vCPU and memory figures are its own; any GPU is the one bundled with the type,
    or an attachable one in a count that region offers for that family; the image, disk type and
    disk size exist and fit each other; packages are allow-listed recipes with their requirements,
    each for the spec's OS family (and a GPU where one is needed); the TTL is within bounds; and
    the cost is what the catalog says.
    """
    try:
        spec = VmSpec.model_validate(spec.model_dump())  # catches model_construct'ed specs too
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "spec"
        raise InvalidSpec(f"The suggested VM is malformed ({where}: {first['msg']}).") from None
    problems = list(_problems(spec, catalog))
    if problems:
        raise InvalidSpec("The suggested VM can't be made: " + "; ".join(problems[:3]) + ".")
    return spec


def _problems(spec: VmSpec, catalog: Catalog) -> Iterator[str]:
    if not GCE_NAME_RE.fullmatch(spec.name):
        yield f"{spec.name!r} isn't a valid VM name (lower-case letters, digits and dashes)"
    if not catalog.has_region(spec.region):
        yield f"{spec.region} isn't a region in the catalog"
        return
    if spec.zone is not None and not re.fullmatch(re.escape(spec.region) + r"-[a-z]", spec.zone):
        yield f"zone {spec.zone} isn't in {spec.region}"
    if not catalog.has_machine_type(spec.machine_type):
        yield f"{spec.machine_type} isn't a machine type in the catalog"
        return
    mt = catalog.machine_type(spec.machine_type)
    if not catalog.is_offered(mt.name, spec.region):
        yield f"{mt.name} isn't offered in {spec.region}"
    if spec.vcpus != max(1, math.ceil(mt.vcpus)) or not math.isclose(spec.memory_gb, mt.memory_gb):
        yield f"{mt.name} has {mt.vcpus:g} vCPUs and {mt.memory_gb:g} GB"
    yield from _gpu_problems(spec, mt, catalog)
    yield from _disk_problems(spec, catalog)
    yield from _package_problems(spec)
    if spec.ttl_hours is not None and not MIN_TTL_HOURS <= spec.ttl_hours <= MAX_TTL_HOURS:
        yield "the time to live must be between a minute and 90 days"
    try:
        cost = price_spec(catalog, spec)
    except CatalogError as exc:
        yield str(exc).rstrip(".")
        return
    if abs(cost.usd_per_hour - spec.cost.usd_per_hour) > _COST_TOLERANCE_USD or (
        (cost.usd_total is None) != (spec.cost.usd_total is None)
        or abs((cost.usd_total or 0) - (spec.cost.usd_total or 0)) > _COST_TOLERANCE_USD
    ):
        yield f"the price is ${cost.usd_per_hour:.4f}/h, not ${spec.cost.usd_per_hour:.4f}/h"


def _gpu_problems(spec: VmSpec, mt: MachineType, catalog: Catalog) -> Iterator[str]:
    gpu = spec.gpu
    if mt.has_gpu:
        if gpu is None or (gpu.type, gpu.count) != (mt.gpu_type, mt.gpu_count):
            yield f"{mt.name} comes with {mt.gpu_count}× {mt.gpu_type}"
        return
    if gpu is None:
        return
    if gpu.type not in catalog.gpu_types:
        yield f"{gpu.type} isn't a GPU in the catalog"
        return
    if spec.region not in catalog.gpu_regions(gpu.type):
        yield f"{gpu.type} isn't offered in {spec.region}"
        return
    attachable = next(
        (g for g in catalog.attachable_gpus if g.gpu_type == gpu.type and g.region == spec.region),
        None,
    )
    if attachable is None or attachable.machine_family != mt.family:
        yield f"{gpu.type} can't be attached to {mt.name}"
    elif gpu.count not in attachable.counts:
        yield f"{gpu.type} comes in counts of {', '.join(map(str, attachable.counts))}"


def _disk_problems(spec: VmSpec, catalog: Catalog) -> Iterator[str]:
    try:
        image = catalog.image(spec.os_image)
    except CatalogError:
        yield f"{spec.os_image} isn't an image family in the catalog"
        return
    if image.os_family != spec.os_family:
        yield f"{image.label} is a {image.os_family} image, not {spec.os_family}"
    floor = max(MIN_DISK_GB, image.min_disk_gb)
    if not floor <= spec.disk_gb <= MAX_DISK_GB:
        yield f"{image.label} needs a disk between {floor} and {MAX_DISK_GB} GB"
    if spec.disk_type not in catalog.disk_types:
        yield f"{spec.disk_type} isn't a disk type in the catalog"


def _package_problems(spec: VmSpec) -> Iterator[str]:
    packages = spec.packages
    try:
        complete = with_requirements(packages)
    except UnknownRecipe as exc:
        yield str(exc)
        return
    if len(set(packages)) != len(packages) or complete != packages:
        yield "packages must list each recipe once, with what it requires, in install order"
    for name in packages:
        recipe = RECIPES_BY_NAME[name]
        if spec.os_family not in recipe.os_families:
            yield f"{name} can't be installed on {spec.os_family}"
        if recipe.needs_gpu and spec.gpu is None:
            yield f"{name} needs a GPU"
