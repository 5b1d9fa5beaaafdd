"""Catalog tests. Expected prices are copied by hand from the rows of provisioning/data/*.csv."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

import provisioning.catalog as catalog_module
from provisioning.catalog import (
    HOURS_PER_MONTH,
    Catalog,
    CatalogError,
    DiskPrice,
    MachinePrice,
    MachineType,
    Region,
    cheapest_fit,
    default_catalog,
    price_spec,
    price_vm,
)
from provisioning.spec import Cost, Gpu, VmSpec

DATA_DIR = Path(catalog_module.__file__).parent / "data"


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return default_catalog()


# -- loading --------------------------------------------------------------------------------


def test_default_catalog_is_loaded_once() -> None:
    assert default_catalog() is default_catalog()


def test_load_from_an_explicit_directory_matches_the_packaged_data(catalog: Catalog) -> None:
    loaded = Catalog.load(DATA_DIR)
    assert loaded.machine_types == catalog.machine_types
    assert loaded.regions == catalog.regions
    assert loaded.prices == catalog.prices


def test_catalog_sizes(catalog: Catalog) -> None:
    assert len(catalog.machine_types) == 112
    assert len(catalog.regions) == 43
    assert len(catalog.prices) == 4510  # one per CSV row
    assert catalog.disk_types == ("pd-balanced", "pd-ssd", "pd-standard")
    assert catalog.gpu_types == {
        "nvidia-l4",
        "nvidia-tesla-a100",
        "nvidia-a100-80gb",
        "nvidia-h100-80gb",
        "nvidia-tesla-t4",
    }


def test_source_is_documented() -> None:
    source = (DATA_DIR / "SOURCE.md").read_text()
    assert "Cyclenerd/google-cloud-pricing-cost-calculator" in source
    assert "Apache-2.0" in source
    assert "2026-07-30" in source


@pytest.mark.parametrize(
    ("name", "vcpus", "memory_gb", "gpu_type", "gpu_count", "family"),
    [
        ("e2-micro", 0.25, 1, None, 0, "e2"),
        ("e2-standard-2", 2, 8, None, 0, "e2"),
        ("n1-standard-4", 4, 15, None, 0, "n1"),
        ("n2d-standard-224", 224, 896, None, 0, "n2d"),
        ("c3-standard-4-lssd", 4, 16, None, 0, "c3"),
        ("g2-standard-24", 24, 96, "nvidia-l4", 2, "g2"),
        ("a2-highgpu-1g", 12, 85, "nvidia-tesla-a100", 1, "a2"),
        ("a2-ultragpu-1g", 12, 170, "nvidia-a100-80gb", 1, "a2"),
        ("a3-highgpu-8g", 208, 1872, "nvidia-h100-80gb", 8, "a3"),
    ],
)
def test_machine_type_shapes(
    catalog: Catalog,
    name: str,
    vcpus: float,
    memory_gb: float,
    gpu_type: str | None,
    gpu_count: int,
    family: str,
) -> None:
    assert catalog.machine_type(name) == MachineType(
        name, vcpus, memory_gb, gpu_type, gpu_count, family
    )


@pytest.mark.parametrize(
    ("region", "location"),
    [
        ("us-central1", "Iowa"),
        ("us-west1", "Oregon"),
        ("europe-west2", "London"),
        ("europe-west3", "Frankfurt"),
        ("asia-northeast1", "Tokyo"),
        ("northamerica-northeast1", "Montréal"),
        ("asia-southeast3", "Bangkok"),
    ],
)
def test_region_location(catalog: Catalog, region: str, location: str) -> None:
    assert catalog.region_location(region) == location


@pytest.mark.parametrize(
    ("family", "project", "os_family", "label", "min_disk_gb"),
    [
        ("ubuntu-2204-lts", "ubuntu-os-cloud", "linux", "Ubuntu 22.04 LTS", 10),
        ("ubuntu-2404-lts-amd64", "ubuntu-os-cloud", "linux", "Ubuntu 24.04 LTS", 10),
        ("debian-12", "debian-cloud", "linux", "Debian 12", 10),
        ("rocky-linux-9", "rocky-linux-cloud", "linux", "Rocky Linux 9", 20),
        ("windows-2022", "windows-cloud", "windows", "Windows Server 2022", 50),
        ("windows-2019", "windows-cloud", "windows", "Windows Server 2019", 50),
    ],
)
def test_images(
    catalog: Catalog, family: str, project: str, os_family: str, label: str, min_disk_gb: int
) -> None:
    image = catalog.image(family)
    assert (image.family, image.project, image.os_family, image.label, image.min_disk_gb) == (
        family,
        project,
        os_family,
        label,
        min_disk_gb,
    )


def test_offered_in(catalog: Catalog) -> None:
    a2 = catalog.offered_in("a2-highgpu-1g")
    assert len(a2) == 39
    assert {"us-central1", "europe-west2", "asia-northeast1"} <= a2
    assert "northamerica-south1" not in a2
    assert len(catalog.offered_in("e2-standard-2")) == 42
    assert "asia-southeast3" not in catalog.offered_in("e2-standard-2")
    assert catalog.offered_in("no-such-type") == set()


# -- prices ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("machine_type", "region", "spot", "windows", "expected"),
    [
        ("e2-standard-2", "us-central1", False, False, 0.067011),
        ("e2-standard-2", "us-central1", True, False, 0.040212),
        ("e2-standard-2", "us-central1", False, True, 0.067011 + 0.092),
        ("e2-standard-2", "us-central1", True, True, 0.040212 + 0.092),
        ("e2-micro", "europe-west2", False, False, 0.010792),
        ("g2-standard-4", "europe-west2", False, False, 0.804789),
        ("a2-highgpu-1g", "asia-northeast1", True, False, 2.429675),
        ("n2d-standard-224", "us-central1", False, True, 9.463104 + 10.304),
    ],
)
def test_price_per_hour(
    catalog: Catalog, machine_type: str, region: str, spot: bool, windows: bool, expected: float
) -> None:
    got = catalog.price_per_hour(machine_type, region, spot=spot, windows=windows)
    assert got == pytest.approx(expected, abs=1e-9)


@pytest.mark.parametrize(
    ("disk_type", "region", "per_month"),
    [
        ("pd-balanced", "us-central1", 0.1),
        ("pd-ssd", "europe-west2", 0.204),
        ("pd-standard", "asia-northeast1", 0.052),
    ],
)
def test_disk_price_per_gb_hour(
    catalog: Catalog, disk_type: str, region: str, per_month: float
) -> None:
    assert catalog.disk_price_per_gb_hour(disk_type, region) == pytest.approx(per_month / 730)
    assert HOURS_PER_MONTH == 730


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (
            lambda c: c.price_per_hour("a2-highgpu-1g", "northamerica-south1"),
            "a2-highgpu-1g isn't offered in northamerica-south1 (Mexico); it is offered in "
            "africa-south1 (Johannesburg), asia-east1 (Taiwan), asia-east2 (Hong Kong), "
            "asia-northeast1 (Tokyo), asia-northeast2 (Osaka) and 34 more.",
        ),
        (
            lambda c: c.price_per_hour("m1-ultramem-40", "us-central1"),
            "m1-ultramem-40 isn't a machine type in the catalog",
        ),
        (
            lambda c: c.price_per_hour("e2-standard-2", "mars-north1"),
            "mars-north1 isn't a region in the catalog",
        ),
        (
            lambda c: c.disk_price_per_gb_hour("pd-extreme", "us-central1"),
            "pd-extreme isn't a disk type in the catalog; use one of pd-balanced, pd-ssd, "
            "pd-standard.",
        ),
        (lambda c: c.region_location("moon1"), "moon1 isn't a region in the catalog"),
        (lambda c: c.image("ubuntu-1804-lts"), "ubuntu-1804-lts isn't an image family"),
        (lambda c: c.machine_type("e2-standard-3"), "e2-standard-3 isn't a machine type"),
    ],
)
def test_lookup_errors_are_sentences(
    catalog: Catalog, call: Callable[[Catalog], object], message: str
) -> None:
    with pytest.raises(CatalogError) as info:
        call(catalog)
    assert str(info.value).startswith(message)


# -- price_vm -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "gpu", "per_hour", "ttl"),
    [
        # The DESIGN example: e2-standard-2 in Iowa, 30 GB pd-balanced, Linux, 2 hours.
        (("e2-standard-2", "us-central1", 30, "pd-balanced", False, "linux", 2.0), None,
         0.067011 + 30 * 0.1 / 730, 2.0),
        (("e2-standard-4", "europe-west2", 50, "pd-ssd", False, "windows", None), None,
         0.172671 + 0.184 + 50 * 0.204 / 730, None),
        (("g2-standard-4", "us-central1", 100, "pd-standard", True, "linux", 8.0), None,
         0.397336 + 100 * 0.04 / 730, 8.0),
        # Bundled GPUs are in the machine price; naming them adds nothing.
        (("g2-standard-24", "us-central1", 30, "pd-balanced", False, "linux", 1.0),
         Gpu(type="nvidia-l4", count=2), 2.000833 + 30 * 0.1 / 730, 1.0),
        # Attached T4s add 0.35 per GPU-hour, on-demand rate even for spot.
        (("n1-standard-4", "us-central1", 30, "pd-balanced", False, "linux", 3.0),
         Gpu(type="nvidia-tesla-t4", count=2), 0.189999 + 2 * 0.35 + 30 * 0.1 / 730, 3.0),
        (("n1-standard-4", "us-central1", 30, "pd-balanced", True, "linux", 3.0),
         Gpu(type="nvidia-tesla-t4", count=1), 0.06701 + 0.35 + 30 * 0.1 / 730, 3.0),
    ],
)  # fmt: skip
def test_price_vm(
    catalog: Catalog, args: tuple, gpu: Gpu | None, per_hour: float, ttl: float | None
) -> None:
    cost = price_vm(catalog, *args, gpu=gpu)
    assert cost.usd_per_hour == pytest.approx(per_hour, abs=5e-5)
    assert cost.usd_per_hour == round(cost.usd_per_hour, 4)
    if ttl is None:
        assert cost.usd_total is None
    else:
        assert cost.usd_total == pytest.approx(per_hour * ttl, abs=5e-5)


def test_design_example_price_is_exact(catalog: Catalog) -> None:
    cost = price_vm(catalog, "e2-standard-2", "us-central1", 30, "pd-balanced", False, "linux", 2)
    assert cost == Cost(usd_per_hour=0.0711, usd_total=0.1422)


@pytest.mark.parametrize(
    ("machine_type", "region", "gpu", "ttl", "message"),
    [
        ("g2-standard-4", "us-central1", Gpu(type="nvidia-tesla-a100", count=1), 1.0,
         "g2-standard-4 comes with 1× nvidia-l4; it can't carry 1× nvidia-tesla-a100."),
        ("e2-standard-4", "us-central1", Gpu(type="nvidia-tesla-t4", count=1), 1.0,
         "nvidia-tesla-t4 attaches only to n1 machine types, not e2-standard-4."),
        ("n1-standard-4", "us-central1", Gpu(type="nvidia-tesla-t4", count=3), 1.0,
         "nvidia-tesla-t4 comes in counts of 1, 2, 4 per VM, not 3."),
        ("n1-standard-4", "europe-west2", Gpu(type="nvidia-tesla-t4", count=1), 1.0,
         "nvidia-tesla-t4 is only offered in us-central1 (Iowa); pick that region or another GPU."),
        ("n1-standard-4", "us-central1", None, 0.0, "The time to live must be more than 0 hours."),
    ],
)  # fmt: skip
def test_price_vm_errors(
    catalog: Catalog, machine_type: str, region: str, gpu: Gpu | None, ttl: float, message: str
) -> None:
    with pytest.raises(CatalogError) as info:
        price_vm(catalog, machine_type, region, 30, "pd-balanced", False, "linux", ttl, gpu=gpu)
    assert str(info.value) == message


def test_price_spec_matches_price_vm(catalog: Catalog) -> None:
    spec = VmSpec(
        name="gpu-box-0001",
        machine_type="n1-standard-4",
        vcpus=4,
        memory_gb=15,
        gpu=Gpu(type="nvidia-tesla-t4", count=1),
        os_image="ubuntu-2204-lts",
        disk_gb=40,
        region="us-central1",
        ttl_hours=5,
        cost=Cost(usd_per_hour=0),
    )
    expected = price_vm(
        catalog,
        "n1-standard-4",
        "us-central1",
        40,
        "pd-balanced",
        False,
        "linux",
        5,
        gpu=Gpu(type="nvidia-tesla-t4", count=1),
    )
    assert price_spec(catalog, spec) == expected


# -- cheapest_fit ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("vcpus", "memory_gb", "region", "gpu_type", "gpu_count", "spot", "expected"),
    [
        (2, 4, "us-central1", None, 0, False, "e2-standard-2"),
        (1, 2, "us-central1", None, 0, False, "e2-medium"),
        (0.25, 1, "us-central1", None, 0, False, "e2-micro"),
        (4, 15, "europe-west2", None, 0, False, "e2-standard-4"),
        (2, 16, "us-central1", None, 0, False, "e2-highmem-2"),
        (8, 16, "europe-west3", None, 0, False, "e2-standard-8"),
        (33, 64, "us-central1", None, 0, False, "n2d-standard-48"),
        (208, 832, "us-central1", None, 0, False, "n2d-standard-224"),
        # Spot prices rank differently: n2d-standard-4 is the cheapest spot fit here.
        (2, 13, "us-central1", None, 0, True, "n2d-standard-4"),
        (1, 1, "us-central1", "nvidia-l4", 1, False, "g2-standard-4"),
        (1, 1, "us-central1", "nvidia-l4", 2, False, "g2-standard-24"),
        (1, 1, "us-central1", "nvidia-l4", 3, False, "g2-standard-48"),
        (1, 1, "europe-west2", "nvidia-tesla-a100", 1, False, "a2-highgpu-1g"),
        (1, 1, "us-central1", "nvidia-a100-80gb", 1, False, "a2-ultragpu-1g"),
        (1, 1, "us-central1", "nvidia-h100-80gb", 8, False, "a3-highgpu-8g"),
        (4, 12, "us-central1", "nvidia-tesla-t4", 1, False, "n1-standard-4"),
        (2, 8, "us-central1", "nvidia-tesla-t4", 2, False, "n1-highmem-2"),
    ],
)
def test_cheapest_fit(
    catalog: Catalog,
    vcpus: float,
    memory_gb: float,
    region: str,
    gpu_type: str | None,
    gpu_count: int,
    spot: bool,
    expected: str,
) -> None:
    got = cheapest_fit(
        catalog,
        vcpus=vcpus,
        memory_gb=memory_gb,
        region=region,
        gpu_type=gpu_type,
        gpu_count=gpu_count,
        spot=spot,
    )
    assert got.name == expected


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"vcpus": 500, "memory_gb": 1, "region": "us-central1"},
            "No general-purpose machine type in us-central1 (Iowa) has 500 vCPUs; the largest is "
            "n2d-standard-224 with 224 vCPUs and 896 GB.",
        ),
        (
            {"vcpus": 1, "memory_gb": 5000, "region": "us-central1"},
            "No general-purpose machine type in us-central1 (Iowa) has 5000 GB of memory; the "
            "largest is c3-highmem-192-metal with 1536 GB and 192 vCPUs.",
        ),
        (
            {"vcpus": 224, "memory_gb": 1000, "region": "us-central1"},
            "No general-purpose machine type in us-central1 (Iowa) has both 224 vCPUs and 1000 GB; "
            "ask for fewer vCPUs or less memory.",
        ),
        (
            {"vcpus": 1, "memory_gb": 1, "region": "asia-southeast3"},
            "No general-purpose machine type is offered in asia-southeast3 (Bangkok); try "
            "africa-south1 (Johannesburg), asia-east1 (Taiwan), asia-east2 (Hong Kong), "
            "asia-northeast1 (Tokyo), asia-northeast2 (Osaka) and 37 more.",
        ),
        (
            {
                "vcpus": 1,
                "memory_gb": 1,
                "region": "europe-west2",
                "gpu_type": "nvidia-tesla-t4",
                "gpu_count": 1,
            },
            "nvidia-tesla-t4 is only offered in us-central1 (Iowa); pick that region or another "
            "GPU.",
        ),
        (
            {
                "vcpus": 1,
                "memory_gb": 1,
                "region": "us-central1",
                "gpu_type": "nvidia-tesla-t4",
                "gpu_count": 3,
            },
            "nvidia-tesla-t4 comes in counts of 1, 2, 4 per VM, not 3.",
        ),
        (
            {
                "vcpus": 1,
                "memory_gb": 1,
                "region": "us-central1",
                "gpu_type": "nvidia-l4",
                "gpu_count": 16,
            },
            "A VM can have at most 8× nvidia-l4; ask for fewer.",
        ),
        (
            {
                "vcpus": 1,
                "memory_gb": 1,
                "region": "us-central1",
                "gpu_type": "nvidia-tesla-v100",
                "gpu_count": 1,
            },
            "nvidia-tesla-v100 isn't a GPU in the catalog; choose one of nvidia-a100-80gb, "
            "nvidia-h100-80gb, nvidia-l4, nvidia-tesla-a100, nvidia-tesla-t4.",
        ),
        (
            {"vcpus": 1, "memory_gb": 1, "region": "mars-north1"},
            "mars-north1 isn't a region in the catalog; use a region id like us-central1 or "
            "europe-west2.",
        ),
    ],
)
def test_cheapest_fit_errors_say_what_is_available(
    catalog: Catalog, kwargs: dict, message: str
) -> None:
    with pytest.raises(CatalogError) as info:
        cheapest_fit(catalog, **kwargs)
    assert str(info.value) == message


def test_cheapest_fit_never_picks_a_gpu_type_unasked(catalog: Catalog) -> None:
    for vcpus, memory_gb in [(1, 1), (12, 85), (24, 96), (96, 384)]:
        assert not cheapest_fit(
            catalog, vcpus=vcpus, memory_gb=memory_gb, region="us-central1"
        ).has_gpu


def _tiny_catalog(prices: dict[str, float]) -> Catalog:
    """A hand-made catalog where each type has the same shape, so only families and price vary."""
    names = list(prices)
    return Catalog(
        machine_types=[MachineType(n, 2, 8, None, 0, n.split("-")[0]) for n in names],
        regions=[Region("r1", "Somewhere")],
        machine_prices=[MachinePrice(n, "r1", p, p / 2, 0.1) for n, p in prices.items()],
        disk_prices=[DiskPrice("pd-balanced", "r1", 0.1)],
    )


@pytest.mark.parametrize(
    ("prices", "expected"),
    [
        # Preferred families win even when an older or premium family is cheaper...
        ({"n1-standard-2": 0.01, "c3-standard-2": 0.02, "n2-standard-2": 0.05}, "n2-standard-2"),
        # ...then the cheapest among them...
        ({"e2-standard-2": 0.06, "n2d-standard-2": 0.05, "n1-standard-2": 0.01}, "n2d-standard-2"),
        # ...other families before local-SSD or bare-metal shapes.
        ({"c3-standard-2-lssd": 0.01, "n1-standard-2": 0.05}, "n1-standard-2"),
    ],
)
def test_cheapest_fit_prefers_general_purpose_families(
    prices: dict[str, float], expected: str
) -> None:
    catalog = _tiny_catalog(prices)
    assert cheapest_fit(catalog, vcpus=1, memory_gb=1, region="r1").name == expected


def test_hand_made_catalog_rejects_rows_for_unknown_names() -> None:
    with pytest.raises(CatalogError, match="unknown region r2"):
        Catalog(
            machine_types=[MachineType("e2-standard-2", 2, 8, None, 0, "e2")],
            regions=[Region("r1", "Somewhere")],
            machine_prices=[MachinePrice("e2-standard-2", "r2", 1, 1, 0)],
            disk_prices=[],
        )


# -- GPUs and places ------------------------------------------------------------------------


def test_gpu_models_have_vram_smallest_first(catalog: Catalog) -> None:
    assert [(g.gpu_type, g.vram_gb) for g in catalog.gpus] == [
        ("nvidia-tesla-t4", 16),
        ("nvidia-l4", 24),
        ("nvidia-tesla-a100", 40),
        ("nvidia-a100-80gb", 80),
        ("nvidia-h100-80gb", 80),
    ]
    assert {g.gpu_type for g in catalog.gpus} == catalog.gpu_types
    assert catalog.gpu("nvidia-l4").label == "NVIDIA L4"
    with pytest.raises(CatalogError, match="nvidia-v100 isn't a GPU in the catalog"):
        catalog.gpu("nvidia-v100")


def test_gpu_regions_follow_the_price_rows(catalog: Catalog) -> None:
    assert catalog.gpu_regions("nvidia-tesla-t4") == {"us-central1"}  # attachable_gpus.csv
    l4 = catalog.gpu_regions("nvidia-l4")  # wherever a g2 type has a price
    assert l4 == {r for (m, r) in catalog.prices if m.startswith("g2-")}
    assert "europe-west2" in l4 and "northamerica-south1" not in l4
    assert "northamerica-northeast2" not in catalog.gpu_regions("nvidia-tesla-a100")
    assert catalog.gpu_regions("nvidia-v100") == frozenset()


def test_regions_know_their_city_country_and_area(catalog: Catalog) -> None:
    london = catalog.region("europe-west2")
    assert (london.location, london.city, london.country, london.area) == (
        "London", "London", "United Kingdom", "Europe",
    )  # fmt: skip
    assert catalog.region("asia-south2").city == "Delhi"
    assert catalog.region("europe-west4").country == "Netherlands"
    assert all(r.country and r.area and r.city for r in catalog.regions)


def test_regions_come_in_preference_order(catalog: Catalog) -> None:
    ids = [r.id for r in catalog.regions]
    assert ids[0] == "us-central1"
    europe = [r.id for r in catalog.regions if r.area == "Europe"]
    assert europe[0] == "europe-west1"
    germany = [r.id for r in catalog.regions if r.country == "Germany"]
    assert germany == ["europe-west3", "europe-west10"]
