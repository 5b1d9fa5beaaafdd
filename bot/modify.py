"""The Modify modal: the current spec as form fields, and the submission read back into a spec.

Both halves are pure. `read_modify` checks each field against the catalog so that a problem is
shown on the field that caused it (Slack's `response_action: errors`), then runs the whole spec
through `validate_spec`, the same gate every advisor's output passes.
"""

from __future__ import annotations

import math
from typing import Any

from pydantic import ValidationError

from bot.blocks import MODIFY_VIEW, Block, clip, hours
from provisioning.catalog import (
    Catalog,
    CatalogError,
    Image,
    MachineType,
    default_catalog,
    price_vm,
)
from provisioning.recipes import RECIPES, RECIPES_BY_NAME, UnknownRecipe, with_requirements
from provisioning.spec import Gpu, VmSpec
from provisioning.validation import (
    MAX_DISK_GB,
    MAX_TTL_HOURS,
    MIN_DISK_GB,
    MIN_TTL_HOURS,
    InvalidSpec,
    validate_spec,
)
from provisioning.views import RequestView

MACHINE_BLOCK = "modify_machine_type"
DISK_BLOCK = "modify_disk_gb"
IMAGE_BLOCK = "modify_os_image"
GPU_BLOCK = "modify_gpu_type"
GPU_COUNT_BLOCK = "modify_gpu_count"
REGION_BLOCK = "modify_region"
PACKAGES_BLOCK = "modify_packages"
TTL_BLOCK = "modify_ttl_hours"
SPOT_BLOCK = "modify_spot"
VALUE = "value"  # each input block holds one element, so one action id serves them all

NO_GPU = "none"
SPOT = "spot"
MAX_ERROR = 150  # Slack shows at most this much of an inline error
RATIONALE = "Set by hand in the Modify form."


def _text(text: str) -> dict[str, Any]:
    return {"type": "plain_text", "text": clip(text, 75), "emoji": True}


def _option(text: str, value: str) -> dict[str, Any]:
    return {"text": _text(text), "value": value}


def _input(block_id: str, label: str, element: Block, *, optional: bool = False) -> Block:
    block: Block = {
        "type": "input",
        "block_id": block_id,
        "label": {"type": "plain_text", "text": label},
        "element": {**element, "action_id": VALUE},
    }
    if optional:
        block["optional"] = True
    return block


def _number_input(initial: float | None, *, decimals: bool, minimum: int | None = None) -> Block:
    element: Block = {"type": "number_input", "is_decimal_allowed": decimals}
    if initial is not None:
        element["initial_value"] = f"{initial:g}"
    if minimum is not None:
        element["min_value"] = str(minimum)
    return element


def _select(options: list[dict[str, Any]], selected: str) -> Block:
    element: Block = {"type": "static_select", "options": options}
    initial = next((o for o in options if o["value"] == selected), None)
    if initial is not None:
        element["initial_option"] = initial
    return element


def _machine_line(spec: VmSpec) -> str:
    gpu = f" · {spec.gpu.count}× {spec.gpu.type}" if spec.gpu else ""
    return (
        f"Now {spec.machine_type}: {spec.vcpus} vCPU · {spec.memory_gb:g} GB{gpu}. "
        "vCPUs and memory come with the machine type (e2-standard-4, n2-highmem-8, …)."
    )


def modify_modal(view: RequestView, catalog: Catalog | None = None) -> Block:
    """The Modify form for a request, prefilled with its current spec."""
    catalog = catalog or default_catalog()
    spec = view.spec
    images = [_option(i.label, i.family) for i in catalog.images]
    gpus = [_option("No GPU", NO_GPU)] + [_option(g.label, g.gpu_type) for g in catalog.gpus]
    regions = [_option(f"{r.id} ({r.location})", r.id) for r in catalog.regions][:100]
    recipes = [_option(r.label, r.name) for r in RECIPES][:100]
    packages: Block = {
        "type": "multi_static_select",
        "placeholder": _text("Nothing extra"),
        "options": recipes,
    }
    chosen = [o for o in recipes if o["value"] in spec.packages]
    if chosen:
        packages["initial_options"] = chosen
    spot_option = _option("Spot VM: much cheaper, but Google may stop it at any time", SPOT)
    spot: Block = {"type": "checkboxes", "options": [spot_option]}
    if spec.spot:
        spot["initial_options"] = [spot_option]
    ttl = "no expiry" if spec.ttl_hours is None else hours(spec.ttl_hours)
    return {
        "type": "modal",
        "callback_id": MODIFY_VIEW,
        "private_metadata": str(view.id),
        "title": {"type": "plain_text", "text": "Modify the request"},
        "submit": {"type": "plain_text", "text": "Update"},
        "close": {"type": "plain_text", "text": "Cancel"},
        "blocks": [
            {
                "type": "section",
                "text": {
                    "type": "mrkdwn",
                    "text": f"*{spec.name}*: change what you need; the price and the policy "
                    "are checked again when you press Update.",
                },
            },
            _input(
                MACHINE_BLOCK,
                "Machine type",
                {
                    "type": "plain_text_input",
                    "initial_value": spec.machine_type,
                    "max_length": 40,
                },
            ),
            {"type": "context", "elements": [{"type": "mrkdwn", "text": _machine_line(spec)}]},
            _input(REGION_BLOCK, "Region", _select(regions, spec.region)),
            _input(IMAGE_BLOCK, "Operating system", _select(images, spec.os_image)),
            _input(
                DISK_BLOCK,
                f"Disk ({spec.disk_type}, GB)",
                _number_input(spec.disk_gb, decimals=False, minimum=MIN_DISK_GB),
            ),
            _input(GPU_BLOCK, "GPU", _select(gpus, spec.gpu.type if spec.gpu else NO_GPU)),
            _input(
                GPU_COUNT_BLOCK,
                "GPU count",
                _number_input(spec.gpu.count if spec.gpu else 1, decimals=False),
                optional=True,
            ),
            _input(PACKAGES_BLOCK, "Installs", packages, optional=True),
            _input(
                TTL_BLOCK,
                f"Time to live in hours (now {ttl})",
                _number_input(spec.ttl_hours, decimals=True),
                optional=True,
            ),
            _input(SPOT_BLOCK, "Pricing", spot, optional=True),
        ],
    }


# -- reading a submission -------------------------------------------------------------------


class _Form:
    """One submission's values, and the first problem found with each block."""

    def __init__(self, values: dict[str, Any]) -> None:
        self._values = values
        self.errors: dict[str, str] = {}

    def _element(self, block_id: str) -> dict[str, Any]:
        element = (self._values.get(block_id) or {}).get(VALUE)
        return element if isinstance(element, dict) else {}

    def text(self, block_id: str) -> str:
        return str(self._element(block_id).get("value") or "").strip()

    def choice(self, block_id: str) -> str | None:
        option = self._element(block_id).get("selected_option") or {}
        value = option.get("value")
        return str(value) if value else None

    def choices(self, block_id: str) -> list[str]:
        options = self._element(block_id).get("selected_options") or []
        return [str(o["value"]) for o in options if isinstance(o, dict) and o.get("value")]

    def fail(self, block_id: str, message: str) -> None:
        self.errors.setdefault(block_id, clip(message, MAX_ERROR))

    def ok(self, *block_ids: str) -> bool:
        return not any(b in self.errors for b in block_ids)


def _number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _whole(text: str) -> int | None:
    value = _number(text)
    return int(value) if value is not None and value.is_integer() else None


def _some(names: list[str], limit: int = 3) -> str:
    return ", ".join(names[:limit]) + (", …" if len(names) > limit else "")


def _read_machine(form: _Form, catalog: Catalog) -> MachineType | None:
    name = form.text(MACHINE_BLOCK).lower()
    if not name:
        form.fail(MACHINE_BLOCK, "Give a machine type, e.g. e2-standard-4.")
        return None
    if not catalog.has_machine_type(name):
        form.fail(
            MACHINE_BLOCK,
            f"{name} isn't a machine type in the catalog; try one like e2-standard-4 "
            "or n2-highmem-8.",
        )
        return None
    return catalog.machine_type(name)


def _read_region(form: _Form, catalog: Catalog, mt: MachineType | None) -> str | None:
    region = form.choice(REGION_BLOCK)
    if region is None or not catalog.has_region(region):
        form.fail(REGION_BLOCK, "Choose a region from the list.")
        return None
    if mt is not None and not catalog.is_offered(mt.name, region):
        offered = catalog.offered_in(mt.name)
        where = [r.id for r in catalog.regions if r.id in offered]
        form.fail(
            REGION_BLOCK,
            f"{mt.name} isn't offered in {region}; pick another region (e.g. {_some(where)}) "
            "or another machine type.",
        )
    return region


def _read_image(form: _Form, catalog: Catalog) -> Image | None:
    family = form.choice(IMAGE_BLOCK)
    try:
        return catalog.image(family or "")
    except CatalogError:
        form.fail(IMAGE_BLOCK, "Choose an operating system from the list.")
        return None


def _read_disk(form: _Form, image: Image | None) -> int | None:
    text = form.text(DISK_BLOCK)
    disk_gb = _whole(text)
    floor = max(MIN_DISK_GB, image.min_disk_gb if image else MIN_DISK_GB)
    if disk_gb is None:
        form.fail(DISK_BLOCK, "Give the disk size as a whole number of GB, e.g. 30.")
    elif disk_gb < floor:
        needs = image.label if image else "The boot disk"
        form.fail(DISK_BLOCK, f"{needs} needs a disk of at least {floor} GB.")
    elif disk_gb > MAX_DISK_GB:
        form.fail(DISK_BLOCK, f"The disk can be at most {MAX_DISK_GB} GB.")
    else:
        return disk_gb
    return None


def _gpu_label(catalog: Catalog, gpu_type: str) -> str:
    try:
        return catalog.gpu(gpu_type).label
    except CatalogError:
        return gpu_type


def _read_gpu(
    form: _Form, catalog: Catalog, mt: MachineType | None, region: str | None
) -> Gpu | None:
    choice = form.choice(GPU_BLOCK)
    choice = None if choice == NO_GPU else choice
    count_text = form.text(GPU_COUNT_BLOCK) if choice is not None else ""
    count = _whole(count_text) if count_text else None
    if count_text and (count is None or not 1 <= count <= 16):
        form.fail(GPU_COUNT_BLOCK, "Give the GPU count as a whole number from 1 to 16.")
        return None
    if choice is not None and choice not in catalog.gpu_types:
        form.fail(GPU_BLOCK, "Choose a GPU from the list, or No GPU.")
        return None
    if mt is None or region is None:
        return None  # the machine type or region already carries the error
    if mt.has_gpu:
        assert mt.gpu_type is not None
        label = _gpu_label(catalog, mt.gpu_type)
        if choice not in (None, mt.gpu_type):
            form.fail(
                GPU_BLOCK,
                f"{mt.name} comes with {mt.gpu_count}× {label}; choose that GPU (or No GPU) "
                "or another machine type.",
            )
        elif count not in (None, mt.gpu_count):
            form.fail(
                GPU_COUNT_BLOCK,
                f"{mt.name} comes with exactly {mt.gpu_count}× {label}; pick another machine "
                "type for a different count.",
            )
        return Gpu(type=mt.gpu_type, count=mt.gpu_count)
    if choice is None:
        return None
    label = _gpu_label(catalog, choice)
    if region not in catalog.gpu_regions(choice):
        where = [r.id for r in catalog.regions if r.id in catalog.gpu_regions(choice)]
        form.fail(
            GPU_BLOCK,
            f"{label} isn't offered in {region}; it is in {_some(where)}. "
            "Pick that region, another GPU or No GPU.",
        )
        return None
    attachable = next(
        (g for g in catalog.attachable_gpus if g.gpu_type == choice and g.region == region), None
    )
    if attachable is None:
        bundled = next((m.name for m in catalog.machine_types if m.gpu_type == choice), "")
        form.fail(
            GPU_BLOCK,
            f"{label} comes only with its own machine types (e.g. {bundled}); "
            "set that machine type instead.",
        )
        return None
    if attachable.machine_family != mt.family:
        form.fail(
            GPU_BLOCK,
            f"{label} attaches only to {attachable.machine_family} machine types "
            f"(e.g. {attachable.machine_family}-standard-4), not {mt.name}.",
        )
        return None
    if (count or 1) not in attachable.counts:
        counts = ", ".join(map(str, attachable.counts))
        form.fail(GPU_COUNT_BLOCK, f"{label} comes in counts of {counts} per VM.")
        return None
    return Gpu(type=choice, count=count or 1)


def _read_packages(form: _Form, image: Image | None, gpu: Gpu | None) -> tuple[str, ...]:
    try:
        packages = with_requirements(form.choices(PACKAGES_BLOCK))
    except UnknownRecipe as exc:
        form.fail(PACKAGES_BLOCK, f"Choose installs from the list ({exc}).")
        return ()
    if image is not None:
        wrong = [p for p in packages if image.os_family not in RECIPES_BY_NAME[p].os_families]
        if wrong:
            form.fail(
                PACKAGES_BLOCK,
                f"{_some(wrong)} can't be installed on {image.label}; remove "
                f"{'it' if len(wrong) == 1 else 'them'} or pick another operating system.",
            )
    if form.ok(GPU_BLOCK, GPU_COUNT_BLOCK) and gpu is None:
        needy = [p for p in packages if RECIPES_BY_NAME[p].needs_gpu]
        if needy:
            form.fail(PACKAGES_BLOCK, f"{_some(needy)} needs a GPU; add one or remove it.")
    return packages


def _read_ttl(form: _Form) -> float | None:
    text = form.text(TTL_BLOCK)
    if not text:
        return None
    ttl = _number(text)
    if ttl is None or not MIN_TTL_HOURS <= ttl <= MAX_TTL_HOURS:
        form.fail(
            TTL_BLOCK,
            f"The time to live must be between a minute and 90 days ({MAX_TTL_HOURS:g} "
            "hours), e.g. 2 or 0.5.",
        )
        return None
    return ttl


def read_modify(
    values: dict[str, Any], current: VmSpec, catalog: Catalog
) -> tuple[VmSpec | None, dict[str, str]]:
    """The spec a Modify submission asks for, priced and validated; or the errors by block id.

    `values` is the submission's `view.state.values`. What the form does not show (name, disk
    type, zone within an unchanged region) is kept from `current`.
    """
    form = _Form(values)
    mt = _read_machine(form, catalog)
    region = _read_region(form, catalog, mt)
    image = _read_image(form, catalog)
    disk_gb = _read_disk(form, image)
    gpu = _read_gpu(form, catalog, mt, region)
    packages = _read_packages(form, image, gpu)
    ttl = _read_ttl(form)
    spot = SPOT in form.choices(SPOT_BLOCK)
    if form.errors or mt is None or region is None or image is None or disk_gb is None:
        return None, form.errors
    try:
        cost = price_vm(
            catalog,
            mt.name,
            region,
            disk_gb,
            current.disk_type,
            spot,
            image.os_family,
            ttl,
            gpu=gpu,
        )
        spec = VmSpec(
            name=current.name,
            machine_type=mt.name,
            vcpus=max(1, math.ceil(mt.vcpus)),
            memory_gb=mt.memory_gb,
            gpu=gpu,
            os_image=image.family,
            os_family=image.os_family,
            disk_gb=disk_gb,
            disk_type=current.disk_type,
            region=region,
            zone=current.zone if region == current.region else None,
            spot=spot,
            packages=packages,
            ttl_hours=ttl,
            cost=cost,
            rationale=RATIONALE,
            source="modal",
        )
        return validate_spec(spec, catalog), {}
    except (CatalogError, InvalidSpec) as exc:
        # Every field passed its own check, so this is about how they combine.
        return None, {MACHINE_BLOCK: clip(str(exc), MAX_ERROR)}
    except ValidationError:
        return None, {MACHINE_BLOCK: "That combination can't be made; change a field and retry."}
