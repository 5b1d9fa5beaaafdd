"""Server-side validation of a VmSpec, whatever produced it."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.advisor.rules import RulesAdvisor
from provisioning.catalog import default_catalog, price_spec
from provisioning.recipes import RECIPES
from provisioning.spec import Gpu, VmSpec
from provisioning.validation import InvalidSpec, validate_spec

CATALOG = default_catalog()
ADVISOR = RulesAdvisor(CATALOG, name_suffix=lambda: "3f2a")
DJANGO = ADVISOR.suggest("Django with Postgres and Redis for 2 hours")
T4 = ADVISOR.suggest("jupyter with a T4")
WINDOWS = ADVISOR.suggest("windows server 2022")


def changed(spec: VmSpec, reprice: bool = True, **update: Any) -> VmSpec:
    """`spec` with fields replaced, bypassing the model's own checks (as a bug or a model might)."""
    new = spec.model_construct(**{**dict(spec), **update})
    if reprice:
        try:
            new = new.model_construct(**{**dict(new), "cost": price_spec(CATALOG, new)})
        except Exception:  # noqa: BLE001 - an unpriceable spec keeps its old cost
            pass
    return new


@pytest.mark.parametrize("spec", [DJANGO, T4, WINDOWS], ids=["django", "t4", "windows"])
def test_advisor_specs_are_valid(spec: VmSpec) -> None:
    assert validate_spec(spec, CATALOG) == spec


INVALID: list[tuple[str, dict[str, Any], str]] = [
    ("bad name", {"name": "Django_Dev!"}, "malformed (name"),
    ("name too long", {"name": "a" * 64}, "malformed (name"),
    ("unknown region", {"region": "moon-base1"}, "moon-base1 isn't a region"),
    ("zone elsewhere", {"zone": "europe-west2-b"}, "zone europe-west2-b isn't in us-central1"),
    ("unknown type", {"machine_type": "m1-ultramem-40"}, "isn't a machine type"),
    ("type not offered", {"region": "asia-southeast3"}, "isn't offered in asia-southeast3"),
    ("wrong vcpus", {"vcpus": 64}, "e2-standard-2 has 2 vCPUs and 8 GB"),
    ("wrong memory", {"memory_gb": 640.0}, "e2-standard-2 has 2 vCPUs and 8 GB"),
    ("gpu on e2", {"gpu": Gpu(type="nvidia-tesla-t4", count=1)}, "can't be attached"),
    ("unknown gpu", {"gpu": Gpu(type="nvidia-v100", count=1)}, "isn't a GPU in the catalog"),
    ("unknown image", {"os_image": "centos-7"}, "isn't an image family"),
    ("family mismatch", {"os_family": "windows"}, "is a linux image, not windows"),
    ("tiny disk", {"disk_gb": 5}, "malformed (disk_gb"),
    ("unknown disk type", {"disk_type": "pd-extreme"}, "pd-extreme isn't a disk type"),
    ("unknown recipe", {"packages": ("python3", "bitcoin-miner")}, "not on the recipe allow-list"),
    ("shell in recipe", {"packages": ("redis; rm -rf /",)}, "not on the recipe allow-list"),
    ("missing requirement", {"packages": ("django",)}, "with what it requires"),
    ("duplicate recipe", {"packages": ("redis", "redis")}, "list each recipe once"),
    ("cuda without gpu", {"packages": ("cuda",)}, "cuda needs a GPU"),
    ("ttl too long", {"ttl_hours": 24 * 91}, "malformed (ttl_hours"),
    ("ttl too short", {"ttl_hours": 0.001}, "between a minute and 90 days"),
    ("unknown source", {"source": "shell"}, "malformed (source"),
]


@pytest.mark.parametrize(("why", "update", "message"), INVALID, ids=[i[0] for i in INVALID])
def test_invalid_specs_are_refused_with_a_reason(
    why: str, update: dict[str, Any], message: str
) -> None:
    with pytest.raises(InvalidSpec) as info:
        validate_spec(changed(DJANGO, **update), CATALOG)
    assert message in str(info.value)


def test_a_wrong_price_is_refused() -> None:
    cheap = changed(DJANGO, reprice=False, cost=DJANGO.cost.model_copy(update={"usd_per_hour": 0}))
    with pytest.raises(InvalidSpec, match=r"the price is \$0.0711/h, not \$0.0000/h"):
        validate_spec(cheap, CATALOG)


def test_bundled_gpu_must_match_the_machine_type() -> None:
    l4 = ADVISOR.suggest("an L4")
    with pytest.raises(InvalidSpec, match="comes with 1× nvidia-l4"):
        validate_spec(changed(l4, gpu=Gpu(type="nvidia-l4", count=4)), CATALOG)
    with pytest.raises(InvalidSpec, match="comes with 1× nvidia-l4"):
        validate_spec(changed(l4, gpu=None), CATALOG)


def test_attached_gpu_count_and_region_are_checked() -> None:
    with pytest.raises(InvalidSpec, match="counts of 1, 2, 4"):
        validate_spec(changed(T4, gpu=Gpu(type="nvidia-tesla-t4", count=3)), CATALOG)
    with pytest.raises(InvalidSpec, match="isn't offered in europe-west2"):
        validate_spec(changed(T4, region="europe-west2"), CATALOG)


def test_windows_cannot_have_linux_recipes() -> None:
    with pytest.raises(InvalidSpec, match="redis can't be installed on windows"):
        validate_spec(changed(WINDOWS, packages=("redis",)), CATALOG)


# -- properties -----------------------------------------------------------------------------

mutations = st.fixed_dictionaries(
    {},
    optional={
        "machine_type": st.sampled_from([m.name for m in CATALOG.machine_types] + ["x1-huge"]),
        "region": st.sampled_from([r.id for r in CATALOG.regions] + ["mars-1"]),
        "gpu": st.one_of(
            st.none(),
            st.builds(
                Gpu, type=st.sampled_from(sorted(CATALOG.gpu_types)), count=st.integers(1, 8)
            ),
        ),
        "os_image": st.sampled_from([i.family for i in CATALOG.images]),
        "os_family": st.sampled_from(["linux", "windows"]),
        "disk_gb": st.integers(-5, 70000),
        "disk_type": st.sampled_from([*CATALOG.disk_types, "pd-extreme"]),
        "packages": st.lists(
            st.sampled_from([r.name for r in RECIPES] + ["curl|sh"]), max_size=4
        ).map(tuple),
        "ttl_hours": st.one_of(st.none(), st.floats(-1, 3000, allow_nan=False)),
        "vcpus": st.integers(-1, 500),
    },
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(update=mutations)
def test_validation_accepts_only_specs_the_catalog_can_serve(update: dict[str, Any]) -> None:
    spec = changed(DJANGO, **update)
    try:
        valid = validate_spec(spec, CATALOG)
    except InvalidSpec as e:
        assert str(e).endswith(".") and "\n" not in str(e)
        return
    mt = CATALOG.machine_type(valid.machine_type)
    assert CATALOG.is_offered(mt.name, valid.region)
    assert CATALOG.image(valid.os_image).os_family == valid.os_family
    assert set(valid.packages) <= {r.name for r in RECIPES}
    assert valid.gpu is None or valid.region in CATALOG.gpu_regions(valid.gpu.type)
    assert price_spec(CATALOG, valid) == valid.cost
