"""The Modify modal: the form prefilled from a spec, a submission read back into a spec or into
inline errors by block id, and the whole round trip through signed Slack requests."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest
from slack_sdk.models.views import View

from bot import blocks as ids
from bot import modify
from bot.modify import (
    DISK_BLOCK,
    GPU_BLOCK,
    GPU_COUNT_BLOCK,
    IMAGE_BLOCK,
    MACHINE_BLOCK,
    PACKAGES_BLOCK,
    REGION_BLOCK,
    SPOT_BLOCK,
    TTL_BLOCK,
    VALUE,
    modify_modal,
    read_modify,
)
from provisioning.catalog import default_catalog, price_vm
from provisioning.recipes import RECIPES
from provisioning.spec import Gpu
from tests.conftest import Stack, unique
from tests.slackflow import ask, buttons, click, thread_texts
from tests.test_blocks import SPEC, VIEW

CATALOG = default_catalog()


def _skeleton(node: Any) -> Any:
    """The modal with each option list replaced by its length, so the rest can be compared."""
    if isinstance(node, dict):
        return {
            k: len(v) if k == "options" else _skeleton(v)
            for k, v in node.items()
            if k not in ("initial_option", "initial_options")
        }
    if isinstance(node, list):
        return [_skeleton(item) for item in node]
    return node


def _by_block(modal: dict) -> dict[str, dict]:
    return {b["block_id"]: b for b in modal["blocks"] if "block_id" in b}


def _plain(text: str) -> dict:
    return {"type": "plain_text", "text": text}


def test_modify_modal_exact_and_valid() -> None:
    modal = modify_modal(VIEW)
    View(**modal).validate_json()
    assert len(modal["blocks"]) <= 100
    number = {"type": "number_input", "action_id": VALUE}
    assert _skeleton(modal) == {
        "type": "modal",
        "callback_id": ids.MODIFY_VIEW,
        "private_metadata": "42",
        "title": _plain("Modify the request"),
        "submit": _plain("Update"),
        "close": _plain("Cancel"),
        "blocks": [
            {
                "type": "section",
                "text": {
                    "type": "mrkdwn",
                    "text": "*django-dev-3f2a*: change what you need; the price and the policy "
                    "are checked again when you press Update.",
                },
            },
            {
                "type": "input",
                "block_id": MACHINE_BLOCK,
                "label": _plain("Machine type"),
                "element": {
                    "type": "plain_text_input",
                    "initial_value": "e2-standard-2",
                    "max_length": 40,
                    "action_id": VALUE,
                },
            },
            {
                "type": "context",
                "elements": [
                    {
                        "type": "mrkdwn",
                        "text": "Now e2-standard-2: 2 vCPU · 8 GB. vCPUs and memory come with "
                        "the machine type (e2-standard-4, n2-highmem-8, …).",
                    }
                ],
            },
            {
                "type": "input",
                "block_id": REGION_BLOCK,
                "label": _plain("Region"),
                "element": {"type": "static_select", "options": 43, "action_id": VALUE},
            },
            {
                "type": "input",
                "block_id": IMAGE_BLOCK,
                "label": _plain("Operating system"),
                "element": {"type": "static_select", "options": 6, "action_id": VALUE},
            },
            {
                "type": "input",
                "block_id": DISK_BLOCK,
                "label": _plain("Disk (pd-balanced, GB)"),
                "element": {
                    **number,
                    "is_decimal_allowed": False,
                    "initial_value": "30",
                    "min_value": "10",
                },
            },
            {
                "type": "input",
                "block_id": GPU_BLOCK,
                "label": _plain("GPU"),
                "element": {"type": "static_select", "options": 6, "action_id": VALUE},
            },
            {
                "type": "input",
                "block_id": GPU_COUNT_BLOCK,
                "label": _plain("GPU count"),
                "element": {**number, "is_decimal_allowed": False, "initial_value": "1"},
                "optional": True,
            },
            {
                "type": "input",
                "block_id": PACKAGES_BLOCK,
                "label": _plain("Installs"),
                "element": {
                    "type": "multi_static_select",
                    "placeholder": {"type": "plain_text", "text": "Nothing extra", "emoji": True},
                    "options": len(RECIPES),
                    "action_id": VALUE,
                },
                "optional": True,
            },
            {
                "type": "input",
                "block_id": TTL_BLOCK,
                "label": _plain("Time to live in hours (now 2 h)"),
                "element": {**number, "is_decimal_allowed": True, "initial_value": "2"},
                "optional": True,
            },
            {
                "type": "input",
                "block_id": SPOT_BLOCK,
                "label": _plain("Pricing"),
                "element": {"type": "checkboxes", "options": 1, "action_id": VALUE},
                "optional": True,
            },
        ],
    }
    fields = _by_block(modal)
    regions = fields[REGION_BLOCK]["element"]
    assert regions["initial_option"]["value"] == "us-central1"
    assert regions["options"][0]["text"]["text"] == "us-central1 (Iowa)"
    assert [o["value"] for o in regions["options"]] == [r.id for r in CATALOG.regions]
    assert fields[IMAGE_BLOCK]["element"]["initial_option"]["value"] == "ubuntu-2204-lts"
    assert fields[GPU_BLOCK]["element"]["initial_option"]["value"] == modify.NO_GPU
    packages = fields[PACKAGES_BLOCK]["element"]
    assert [o["value"] for o in packages["initial_options"]] == list(SPEC.packages)
    assert "initial_options" not in fields[SPOT_BLOCK]["element"]
    for block in modal["blocks"]:
        assert len(block.get("element", {}).get("options", [])) <= 100


def test_modify_modal_prefills_gpu_spot_and_no_ttl() -> None:
    spec = SPEC.model_copy(
        update={
            "machine_type": "n1-standard-4",
            "vcpus": 4,
            "memory_gb": 15,
            "gpu": Gpu(type="nvidia-tesla-t4", count=2),
            "spot": True,
            "ttl_hours": None,
            "packages": (),
        }
    )
    modal = modify_modal(replace(VIEW, spec=spec))
    View(**modal).validate_json()
    fields = _by_block(modal)
    assert fields[GPU_BLOCK]["element"]["initial_option"]["value"] == "nvidia-tesla-t4"
    assert fields[GPU_COUNT_BLOCK]["element"]["initial_value"] == "2"
    assert [o["value"] for o in fields[SPOT_BLOCK]["element"]["initial_options"]] == ["spot"]
    assert "initial_value" not in fields[TTL_BLOCK]["element"]
    assert fields[TTL_BLOCK]["label"]["text"] == "Time to live in hours (now no expiry)"
    assert "initial_options" not in fields[PACKAGES_BLOCK]["element"]
    assert "1× nvidia-tesla-t4" not in json.dumps(modal, ensure_ascii=False)  # shows 2
    assert "2× nvidia-tesla-t4" in json.dumps(modal, ensure_ascii=False)


# -- reading submissions ----------------------------------------------------------------------


def _option(value: str) -> dict:
    return {"text": {"type": "plain_text", "text": value}, "value": value}


def submission(
    *,
    machine: str = "e2-standard-2",
    region: str = "us-central1",
    image: str = "ubuntu-2204-lts",
    disk: str = "30",
    gpu: str = "none",
    gpu_count: str = "1",
    packages: tuple[str, ...] = ("python3", "django", "postgresql", "redis"),
    ttl: str = "2",
    spot: bool = False,
) -> dict:
    """What Slack sends as `view.state.values`; the defaults are SPEC unchanged."""

    def text(kind: str, value: str) -> dict:
        return {VALUE: {"type": kind, "value": value or None}}

    return {
        MACHINE_BLOCK: text("plain_text_input", machine),
        REGION_BLOCK: {VALUE: {"type": "static_select", "selected_option": _option(region)}},
        IMAGE_BLOCK: {VALUE: {"type": "static_select", "selected_option": _option(image)}},
        DISK_BLOCK: text("number_input", disk),
        GPU_BLOCK: {VALUE: {"type": "static_select", "selected_option": _option(gpu)}},
        GPU_COUNT_BLOCK: text("number_input", gpu_count),
        PACKAGES_BLOCK: {
            VALUE: {
                "type": "multi_static_select",
                "selected_options": [_option(p) for p in packages],
            }
        },
        TTL_BLOCK: text("number_input", ttl),
        SPOT_BLOCK: {
            VALUE: {
                "type": "checkboxes",
                "selected_options": [_option("spot")] if spot else [],
            }
        },
    }


def test_unchanged_submission_gives_the_same_spec_by_hand() -> None:
    spec, errors = read_modify(submission(), SPEC, CATALOG)
    assert errors == {}
    assert spec is not None
    assert spec.model_dump(exclude={"cost", "rationale", "source"}) == SPEC.model_dump(
        exclude={"cost", "rationale", "source"}
    )
    assert spec.source == "modal"


def test_valid_change_is_priced_and_exact() -> None:
    values = submission(
        machine=" N2-Standard-4 ",
        region="europe-west2",
        image="debian-12",
        disk="50",
        packages=("docker", "django"),
        ttl="3.5",
        spot=True,
    )
    spec, errors = read_modify(values, SPEC.model_copy(update={"zone": "us-central1-b"}), CATALOG)
    assert errors == {}
    assert spec is not None
    expected_cost = price_vm(
        CATALOG, "n2-standard-4", "europe-west2", 50, "pd-balanced", True, "linux", 3.5
    )
    assert spec.cost == expected_cost and spec.cost.usd_per_hour > 0
    assert spec.model_dump(exclude={"cost"}) == {
        "name": "django-dev-3f2a",
        "machine_type": "n2-standard-4",
        "vcpus": 4,
        "memory_gb": 16.0,
        "gpu": None,
        "os_image": "debian-12",
        "os_family": "linux",
        "disk_gb": 50,
        "disk_type": "pd-balanced",
        "region": "europe-west2",
        "zone": None,  # the old zone was in the old region
        "spot": True,
        "packages": ("python3", "django", "docker"),  # with requirements, in install order
        "ttl_hours": 3.5,
        "rationale": modify.RATIONALE,
        "source": "modal",
    }


def test_attached_and_bundled_gpus() -> None:
    spec, errors = read_modify(
        submission(machine="n1-standard-4", gpu="nvidia-tesla-t4", gpu_count="2"), SPEC, CATALOG
    )
    assert errors == {} and spec is not None
    assert spec.gpu == Gpu(type="nvidia-tesla-t4", count=2)
    assert spec.cost.usd_per_hour > 0.7  # two T4s at $0.35/h on top of the machine
    # A type that comes with its GPU keeps it even when the form says No GPU.
    spec, errors = read_modify(submission(machine="g2-standard-4"), SPEC, CATALOG)
    assert errors == {} and spec is not None
    assert spec.gpu == Gpu(type="nvidia-l4", count=1)


@pytest.mark.parametrize(
    ("changes", "block_ids", "says"),
    [
        ({"machine": "e2-galactic-9"}, {MACHINE_BLOCK}, "isn't a machine type"),
        ({"machine": ""}, {MACHINE_BLOCK}, "Give a machine type"),
        ({"region": "asia-southeast3"}, {REGION_BLOCK}, "isn't offered in asia-southeast3"),
        ({"region": "mars-north1"}, {REGION_BLOCK}, "Choose a region"),
        (
            {"machine": "n1-standard-4", "gpu": "nvidia-tesla-t4", "region": "europe-west2"},
            {GPU_BLOCK},
            "NVIDIA T4 isn't offered in europe-west2; it is in us-central1",
        ),
        ({"gpu": "nvidia-tesla-t4"}, {GPU_BLOCK}, "attaches only to n1 machine types"),
        (
            {"machine": "n1-standard-4", "gpu": "nvidia-tesla-t4", "gpu_count": "3"},
            {GPU_COUNT_BLOCK},
            "counts of 1, 2, 4",
        ),
        ({"machine": "g2-standard-4", "gpu": "nvidia-tesla-t4"}, {GPU_BLOCK}, "comes with 1×"),
        ({"image": "windows-2022", "disk": "30", "packages": ()}, {DISK_BLOCK}, "at least 50 GB"),
        ({"disk": "9"}, {DISK_BLOCK}, "at least 10 GB"),
        ({"disk": "30.5"}, {DISK_BLOCK}, "whole number"),
        ({"disk": "70000"}, {DISK_BLOCK}, "at most 65536 GB"),
        ({"ttl": "0"}, {TTL_BLOCK}, "between a minute and 90 days"),
        ({"ttl": "nan"}, {TTL_BLOCK}, "between a minute and 90 days"),
        (
            {"image": "windows-2022", "disk": "60", "packages": ("docker",)},
            {PACKAGES_BLOCK},
            "docker can't be installed on Windows Server 2022",
        ),
        ({"packages": ("cuda",)}, {PACKAGES_BLOCK}, "cuda needs a GPU"),
        ({"packages": ("rm -rf /",)}, {PACKAGES_BLOCK}, "not on the recipe allow-list"),
        (
            {"machine": "nope-1", "disk": "1", "ttl": "0"},
            {MACHINE_BLOCK, DISK_BLOCK, TTL_BLOCK},
            "",
        ),
    ],
)
def test_bad_submissions_name_the_field(changes: dict, block_ids: set[str], says: str) -> None:
    spec, errors = read_modify(submission(**changes), SPEC, CATALOG)
    assert spec is None
    assert set(errors) == block_ids
    assert all(0 < len(message) <= 150 for message in errors.values())
    assert says in " ".join(errors.values())


def test_no_gpu_ignores_the_count() -> None:
    spec, errors = read_modify(submission(gpu_count="0"), SPEC, CATALOG)
    assert errors == {} and spec is not None and spec.gpu is None


def test_empty_ttl_means_no_expiry() -> None:
    spec, errors = read_modify(submission(ttl=""), SPEC, CATALOG)
    assert errors == {} and spec is not None
    assert spec.ttl_hours is None and spec.cost.usd_total is None


# -- end to end through signed Slack requests ---------------------------------------------------


def _state_from(modal: dict, **changes: str) -> dict:
    """What Slack would submit for an opened modal: its initial values, with some typed over."""
    values: dict[str, dict] = {}
    for block in modal["blocks"]:
        if block["type"] != "input":
            continue
        element = block["element"]
        kind = element["type"]
        if kind in ("plain_text_input", "number_input"):
            state = {"type": kind, "value": element.get("initial_value")}
        elif kind == "static_select":
            state = {"type": kind, "selected_option": element.get("initial_option")}
        else:
            state = {"type": kind, "selected_options": element.get("initial_options", [])}
        values[block["block_id"]] = {VALUE: state}
    for block_id, value in changes.items():
        values[block_id][VALUE]["value"] = value
    return values


def test_modify_end_to_end(stack: Stack) -> None:
    user, channel = unique("U"), unique("C")
    card = ask(stack, user, channel)
    request_id = buttons(card)[ids.MODIFY]["value"]
    emu = stack.emulator

    assert click(stack, user, card, ids.MODIFY).status == 200
    opened = emu.wait_for(
        lambda e: next(
            (
                v
                for v in e.views
                if v.view.get("callback_id") == ids.MODIFY_VIEW
                and v.view.get("private_metadata") == request_id
            ),
            None,
        )
    )
    modal = opened.view
    View(**modal).validate_json()
    fields = _by_block(modal)
    before = fields[MACHINE_BLOCK]["element"]["initial_value"]
    assert before.startswith("e2-") and before in json.dumps(card.blocks)
    assert fields[REGION_BLOCK]["element"]["initial_option"]["value"].startswith("us-")
    chosen = {o["value"] for o in fields[PACKAGES_BLOCK]["element"]["initial_options"]}
    assert {"django", "postgresql", "redis"} <= chosen
    assert fields[TTL_BLOCK]["element"]["initial_value"] == "2"

    def submit(as_user: str, **changes: str):
        return stack.wire.send(
            stack.wire.view_submission(
                user=as_user,
                callback_id=ids.MODIFY_VIEW,
                metadata=request_id,
                values=_state_from(modal, **changes),
            )
        )

    bad = submit(user, **{MACHINE_BLOCK: "e2-galactic-9", TTL_BLOCK: "0"})
    assert bad.status == 200
    answer = json.loads(bad.body)
    assert answer["response_action"] == "errors"
    assert set(answer["errors"]) == {MACHINE_BLOCK, TTL_BLOCK}
    assert "e2-galactic-9 isn't a machine type" in answer["errors"][MACHINE_BLOCK]

    # Someone else's submission closes the form but changes nothing; they are told why.
    stranger = unique("U")
    assert submit(stranger, **{MACHINE_BLOCK: "n2-standard-8"}).status == 200
    emu.wait_for(
        lambda e: any(
            "Only the requester can change this request." in m.text
            for m in e.messages(f"D{stranger}")
        )
    )

    good = submit(user, **{MACHINE_BLOCK: "n2-standard-4", TTL_BLOCK: "3"})
    assert good.status == 200
    assert "errors" not in good.body
    updated = emu.wait_for(
        lambda e: (
            (m := e.message(channel, card.ts)) and "n2-standard-4" in json.dumps(m.blocks) and m
        )
    )
    shown = json.dumps(updated.blocks, ensure_ascii=False)
    assert "edited by hand" in shown and "3 h" in shown and "n2-standard-8" not in shown
    notes = emu.wait_for(
        lambda e: [t for t in thread_texts(e, card) if t.startswith("✏️ Updated:")] or None
    )
    assert f"machine {before} → n2-standard-4" in notes[0]
    assert "hours 2 → 3" in notes[0]
