"""Rules advisor tests: table-driven, exact expected fields.

Expected costs are built from the CSV rows in provisioning/data, looked up by hand:
machine $/h (+ Windows license) + disk GB × $/GB-month / 730 (+ attached GPUs).
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.advisor import Advisor, AdvisorError
from bot.advisor.rules import NAME_STEM_VOCABULARY, RulesAdvisor, Wants
from provisioning.catalog import default_catalog
from provisioning.recipes import RECIPES
from provisioning.spec import Gpu, VmSpec

UBUNTU_2404 = "ubuntu-2404-lts-amd64"

# Disk $/GB-month for pd-balanced / pd-ssd, per region, from gce_disk_prices.csv.
BALANCED = {"us-central1": 0.1, "europe-west1": 0.1, "europe-west2": 0.12,
            "europe-west3": 0.12, "asia-northeast1": 0.13, "southamerica-east1": 0.15}  # fmt: skip
SSD = {"us-central1": 0.17}


def make_advisor(**kwargs: Any) -> RulesAdvisor:
    return RulesAdvisor(default_catalog(), name_suffix=lambda: "3f2a", **kwargs)


@pytest.fixture(scope="module")
def advisor() -> RulesAdvisor:
    return make_advisor()


def test_rules_advisor_is_an_advisor() -> None:
    chosen: Advisor = make_advisor()
    assert isinstance(chosen.suggest("a django box"), VmSpec)


# -- whole suggestions ----------------------------------------------------------------------

CASES: list[tuple[str, dict[str, Any], float]] = [
    (
        "I need a Django dev server with Postgres and Redis for 2 hours",
        {
            "name": "django-dev-3f2a",
            "machine_type": "e2-standard-2",
            "vcpus": 2,
            "memory_gb": 8,
            "gpu": None,
            "region": "us-central1",
            "os_image": "ubuntu-2204-lts",
            "os_family": "linux",
            "disk_gb": 30,
            "disk_type": "pd-balanced",
            "spot": False,
            "packages": ("python3", "django", "postgresql", "redis"),
            "ttl_hours": 2.0,
            "rationale": "Django + PostgreSQL + Redis dev box → smallest general-purpose type "
            "that fits (e2-standard-2), 2 h ≈ $0.14",
        },
        0.067011 + 30 * BALANCED["us-central1"] / 730,
    ),
    (
        "4 cpus and 16GB ram on ubuntu 24.04 in London for 90 minutes",
        {
            "name": "dev-box-3f2a",
            "machine_type": "e2-standard-4",
            "vcpus": 4,
            "memory_gb": 16,
            "gpu": None,
            "region": "europe-west2",
            "os_image": "ubuntu-2404-lts-amd64",
            "disk_gb": 30,
            "packages": (),
            "ttl_hours": 1.5,
            "rationale": "Dev box with 4 vCPUs, 16 GB memory → smallest general-purpose type "
            "that fits (e2-standard-4), 1.5 h ≈ $0.27",
        },
        0.172671 + 30 * BALANCED["europe-west2"] / 730,
    ),
    (
        "8 vcpu, 16 gigs of memory, 100GB disk, debian 12, Frankfurt, for 3 days",
        {
            "name": "dev-box-3f2a",
            "machine_type": "e2-standard-8",
            "vcpus": 8,
            "memory_gb": 32,
            "region": "europe-west3",
            "os_image": "debian-12",
            "disk_gb": 100,
            "ttl_hours": 72.0,
        },
        0.345342 + 100 * BALANCED["europe-west3"] / 730,
    ),
    (
        "2 L4s for pytorch training, spot, 3 days",
        {
            "name": "pytorch-train-3f2a",
            "machine_type": "g2-standard-24",
            "vcpus": 24,
            "memory_gb": 96,
            "gpu": Gpu(type="nvidia-l4", count=2),
            "region": "us-central1",
            "spot": True,
            "packages": ("python3", "pytorch"),
            "ttl_hours": 72.0,
            "rationale": "PyTorch dev box with 2× NVIDIA L4 → cheapest type with that GPU that "
            "fits (g2-standard-24), at spot prices, 72 h ≈ $81.28",
        },
        1.124816 + 30 * BALANCED["us-central1"] / 730,
    ),
    (
        "an A100 in Tokyo for a week",
        {
            "name": "gpu-box-3f2a",
            "machine_type": "a2-highgpu-1g",
            "vcpus": 12,
            "memory_gb": 85,
            "gpu": Gpu(type="nvidia-tesla-a100", count=1),
            "region": "asia-northeast1",
            "ttl_hours": 168.0,
        },
        4.049591 + 30 * BALANCED["asia-northeast1"] / 730,
    ),
    (
        "a T4 with jupyter for 2h",
        {
            "name": "jupyter-lab-3f2a",
            "machine_type": "n1-highmem-2",
            "vcpus": 2,
            "memory_gb": 13,
            "gpu": Gpu(type="nvidia-tesla-t4", count=1),
            "region": "us-central1",
            "packages": ("python3", "jupyter"),
            "ttl_hours": 2.0,
        },
        0.118303 + 0.35 + 30 * BALANCED["us-central1"] / 730,
    ),
    (
        # Spot: n2d-standard-4 (0.048912) undercuts e2-standard-4 (0.080424) in us-central1.
        "windows server 2019 with 4 cores, 100GB ssd, spot",
        {
            "name": "windows-box-3f2a",
            "machine_type": "n2d-standard-4",
            "vcpus": 4,
            "memory_gb": 16,
            "os_image": "windows-2019",
            "os_family": "windows",
            "disk_gb": 100,
            "disk_type": "pd-ssd",
            "spot": True,
            "packages": (),
            "ttl_hours": 4.0,
        },
        0.048912 + 0.184 + 100 * SSD["us-central1"] / 730,
    ),
    (
        "Windows box",
        {
            "name": "windows-box-3f2a",
            "machine_type": "e2-medium",
            "os_image": "windows-2022",
            "os_family": "windows",
            "disk_gb": 50,
        },
        0.033506 + 0.046 + 50 * BALANCED["us-central1"] / 730,
    ),
    (
        "tiny box",
        {
            "name": "dev-box-3f2a",
            "machine_type": "e2-micro",
            "vcpus": 1,
            "memory_gb": 1,
            "ttl_hours": 4.0,
            "rationale": "Tiny box → smallest general-purpose type that fits (e2-micro), "
            "4 h ≈ $0.05",
        },
        0.008376 + 30 * BALANCED["us-central1"] / 730,
    ),
    (
        "beefy Docker host in Europe, no gpu",
        {
            "name": "docker-host-3f2a",
            "machine_type": "e2-standard-8",
            "vcpus": 8,
            "memory_gb": 32,
            "gpu": None,
            "region": "europe-west1",
            "packages": ("docker",),
        },
        0.294862 + 30 * BALANCED["europe-west1"] / 730,
    ),
    (
        "n2-standard-4 in europe-west2 for 1h30",
        {
            "name": "dev-box-3f2a",
            "machine_type": "n2-standard-4",
            "vcpus": 4,
            "memory_gb": 16,
            "region": "europe-west2",
            "ttl_hours": 1.5,
            "rationale": "Dev box → the machine type you named (n2-standard-4), 1.5 h ≈ $0.38",
        },
        0.250248 + 30 * BALANCED["europe-west2"] / 730,
    ),
    (
        "flask and mysql without redis, 500GB SSD, rocky 9, not spot",
        {
            "name": "flask-dev-3f2a",
            "machine_type": "e2-standard-2",
            "os_image": "rocky-linux-9",
            "disk_gb": 500,
            "disk_type": "pd-ssd",
            "spot": False,
            "packages": ("python3", "flask", "mysql"),
        },
        0.067011 + 500 * SSD["us-central1"] / 730,
    ),
    (
        "psql box in São Paulo indefinitely",
        {
            "name": "postgres-db-3f2a",
            "machine_type": "e2-standard-2",
            "region": "southamerica-east1",
            "packages": ("postgresql",),
            "ttl_hours": None,
        },
        0.10637 + 30 * BALANCED["southamerica-east1"] / 730,
    ),
    (
        "FastAPI + Node.js + MongoDB, 1TB disk",
        {
            "name": "fastapi-dev-3f2a",
            "machine_type": "e2-standard-2",
            "disk_gb": 1024,
            "packages": ("python3", "nodejs", "fastapi", "mongodb"),
        },
        0.067011 + 1024 * BALANCED["us-central1"] / 730,
    ),
    (
        "asdf qwerty zxcv",
        {
            "name": "dev-box-3f2a",
            "machine_type": "e2-medium",
            "vcpus": 1,
            "memory_gb": 4,
            "gpu": None,
            "region": "us-central1",
            "os_image": "ubuntu-2204-lts",
            "packages": (),
            "ttl_hours": 4.0,
            "rationale": "No specifics given → small general-purpose default (e2-medium), "
            "4 h ≈ $0.15",
        },
        0.033506 + 30 * BALANCED["us-central1"] / 730,
    ),
]


@pytest.mark.parametrize(("text", "expected", "per_hour"), CASES, ids=[c[0] for c in CASES])
def test_suggest(
    advisor: RulesAdvisor, text: str, expected: dict[str, Any], per_hour: float
) -> None:
    spec = advisor.suggest(text)
    assert {k: getattr(spec, k) for k in expected} == expected
    assert spec.source == "rules"
    assert spec.zone is None
    assert spec.cost.usd_per_hour == pytest.approx(per_hour, abs=5e-5)
    if spec.ttl_hours is None:
        assert spec.cost.usd_total is None
    else:
        assert spec.cost.usd_total == pytest.approx(per_hour * spec.ttl_hours, abs=5e-5)


def test_design_example_cost_is_exact(advisor: RulesAdvisor) -> None:
    spec = advisor.suggest("I need a Django dev server with Postgres and Redis for 2 hours")
    assert (spec.cost.usd_per_hour, spec.cost.usd_total) == (0.0711, 0.1422)


def test_defaults_come_from_the_constructor() -> None:
    advisor = make_advisor(default_region="europe-west2", default_ttl_hours=None)
    spec = advisor.suggest("a flask app")
    assert (spec.region, spec.ttl_hours, spec.cost.usd_total) == ("europe-west2", None, None)


def test_default_name_suffix_is_four_hex_chars() -> None:
    spec = RulesAdvisor(default_catalog()).suggest("django")
    assert re.fullmatch(r"django-dev-[0-9a-f]{4}", spec.name)


def test_injected_suffix_is_made_gce_safe() -> None:
    spec = RulesAdvisor(default_catalog(), name_suffix=lambda: "AB_12!").suggest("redis")
    assert spec.name == "redis-cache-ab12"


# -- errors ---------------------------------------------------------------------------------

ERRORS: list[tuple[str, str]] = [
    ("", "Tell me what you need, e.g. `/vm a Django dev server with Postgres and Redis for "
         "2 hours`."),
    ("   \n\t", "Tell me what you need"),
    ("500 vCPUs", "No general-purpose machine type in us-central1 (Iowa) has 500 vCPUs; the "
                  "largest is n2d-standard-224 with 224 vCPUs and 896 GB."),
    ("99999999999999999999 cpus", "No machine type has that many vCPUs"),
    ("0 cpus", "Ask for at least 1 vCPU."),
    ("2 TB of RAM", "No general-purpose machine type in us-central1 (Iowa) has 2048 GB of "
                    "memory; the largest is c3-highmem-192-metal"),
    ("ubuntu 20.04", "Ubuntu 20.04 isn't in the image catalog; choose one of Ubuntu 22.04 LTS, "
                     "Ubuntu 24.04 LTS, Debian 12, Rocky Linux 9, Windows Server 2022, "
                     "Windows Server 2019."),
    ("windows 11", "Windows Server 11 isn't in the image catalog"),
    ("centos 7 box", "CentOS isn't in the image catalog"),
    ("a V100 please", "V100 GPUs aren't in the catalog; choose one of NVIDIA T4, NVIDIA L4, "
                      "NVIDIA A100 40GB, NVIDIA A100 80GB, NVIDIA H100 80GB."),
    ("a T4 in London", "nvidia-tesla-t4 is only offered in us-central1 (Iowa)"),
    ("20 gpus", "Ask for a whole number of GPUs between 1 and 16."),
    ("16 L4s", "A VM can have at most 8× nvidia-l4; ask for fewer."),
    ("m1-ultramem-40", "m1-ultramem-40 isn't a machine type in the catalog"),
    ("in europe-west99", "europe-west99 isn't a region in the catalog"),
    ("an A100 in Mexico", "No machine type with 1× nvidia-tesla-a100 is offered in "
                          "northamerica-south1 (Mexico); try africa-south1"),
    ("a box in Bangkok", "No general-purpose machine type is offered in asia-southeast3"),
    ("a2-highgpu-1g in Mexico", "a2-highgpu-1g isn't offered in northamerica-south1 (Mexico)"),
    ("for 100 days", "I can keep a VM for at most 90 days; ask for less."),
    ("for 0 minutes", "I can't keep a VM for less than a minute; ask for longer."),
    ("windows with docker", "Package recipes install on Linux only; ask for Ubuntu, Debian or "
                            "Rocky Linux, or leave out docker."),
    ("5GB disk", "Ubuntu 22.04 LTS needs a disk of at least 10 GB; ask for more."),
    ("windows, 20GB disk", "Windows Server 2022 needs a disk of at least 50 GB; ask for more."),
    ("100 TB disk", "Disks go up to 64 TB (65536 GB); ask for a smaller one."),
    ("n2-standard-4 with 8 cpus", "n2-standard-4 has 4 vCPUs, not 8; drop the machine type or "
                                  "the vCPU count."),
    ("n2-standard-4 with 64gb ram", "n2-standard-4 has 16 GB of memory, not 64"),
    ("g2-standard-4 with an A100", "g2-standard-4 comes with 1× NVIDIA L4, not 1× NVIDIA A100 "
                                   "40GB; drop one of the two."),
    ("e2-standard-4 with a T4", "NVIDIA T4 can't be added to e2-standard-4"),
    ("x" * 4001, "That request is too long"),
]  # fmt: skip


@pytest.mark.parametrize(("text", "message"), ERRORS, ids=[e[0][:30] for e in ERRORS])
def test_errors_are_sentences(advisor: RulesAdvisor, text: str, message: str) -> None:
    with pytest.raises(AdvisorError) as info:
        advisor.suggest(text)
    assert str(info.value).startswith(message)


# -- reading single phrases -----------------------------------------------------------------

READS: list[tuple[str, str, Any]] = [
    ("4 cpus", "vcpus", 4), ("8 vcpu", "vcpus", 8), ("4 cores", "vcpus", 4),
    ("16-core", "vcpus", 16), ("quad-core", "vcpus", 4), ("eight cores", "vcpus", 8),
    ("cpus: 6", "vcpus", 6),
    ("16GB ram", "memory_gb", 16), ("16 gigs of memory", "memory_gb", 16),
    ("512mb ram", "memory_gb", 0.5), ("memory: 32gb", "memory_gb", 32),
    ("32gb", "memory_gb", 32),
    ("100GB disk", "disk_gb", 100), ("1TB", "disk_gb", 1024), ("2 tb of storage", "disk_gb", 2048),
    ("disk: 200gb", "disk_gb", 200), ("250gb", "disk_gb", 250), ("20 gb free space", "disk_gb", 20),
    ("500GB SSD", "disk_type", "pd-ssd"), ("hdd", "disk_type", "pd-standard"),
    ("no ssd", "disk_type", None),
    ("2 hours", "ttl_hours", 2), ("2h", "ttl_hours", 2), ("90 minutes", "ttl_hours", 1.5),
    ("45m", "ttl_hours", 0.75), ("for 3 days", "ttl_hours", 72), ("a week", "ttl_hours", 168),
    ("an hour and a half", "ttl_hours", 1.5), ("1 hour and 30 minutes", "ttl_hours", 1.5),
    ("1h30", "ttl_hours", 1.5), ("half a day", "ttl_hours", 12), ("overnight", "ttl_hours", 12),
    ("a couple of hours", "ttl_hours", 2), ("for 2 weeks", "ttl_hours", 336),
    ("I am here", "ttl_hours", None), ("forever", "ttl_given", True),
    ("europe-west2", "region", "europe-west2"), ("us-east4-b", "region", "us-east4"),
    ("London", "region", "europe-west2"), ("in Frankfurt", "region", "europe-west3"),
    ("Tokyo", "region", "asia-northeast1"), ("Iowa", "region", "us-central1"),
    ("Oregon", "region", "us-west1"), ("in Europe", "region", "europe-west1"),
    ("the UK", "region", "europe-west2"), ("Germany", "region", "europe-west3"),
    ("Montréal", "region", "northamerica-northeast1"), ("not in London", "region", None),
    ("Tokyo or London", "region", "asia-northeast1"),
    ("a T4", "gpu_type", "nvidia-tesla-t4"), ("2 L4s", "gpu_count", 2),
    ("2 L4s", "gpu_type", "nvidia-l4"), ("A100", "gpu_type", "nvidia-tesla-a100"),
    ("A100 80GB", "gpu_type", "nvidia-a100-80gb"), ("8xH100", "gpu_count", 8),
    ("nvidia tesla t4 x2", "gpu_count", 2), ("a GPU", "gpu_generic", True),
    ("two gpus", "gpu_count", 2),
    ("no gpu", "gpu_off", True), ("without a GPU", "gpu_off", True),
    ("I don't need a GPU", "gpu_off", True), ("cpu only", "gpu_off", True),
    ("no T4", "gpu_type", None),
    ("ubuntu", "image_family", "ubuntu-2204-lts"),
    ("Ubuntu 22.04", "image_family", "ubuntu-2204-lts"),
    ("ubuntu 24.04 lts", "image_family", "ubuntu-2404-lts-amd64"),
    ("noble", "image_family", "ubuntu-2404-lts-amd64"), ("debian", "image_family", "debian-12"),
    ("Debian 12", "image_family", "debian-12"), ("rocky linux 9", "image_family", "rocky-linux-9"),
    ("windows server 2022", "image_family", "windows-2022"),
    ("windows 2019", "image_family", "windows-2019"), ("Windows", "image_family", "windows-2022"),
    ("debian 12 hours", "image_family", "debian-12"), ("debian 12 hours", "ttl_hours", 12),
    ("spot", "spot", True), ("preemptible", "spot", True), ("not spot", "spot", False),
    ("non-preemptible", "spot", False), ("on-demand", "spot", False), ("django", "spot", None),
    ("postgres", "recipes", ["postgresql"]), ("PostgreSQL", "recipes", ["postgresql"]),
    ("psql", "recipes", ["postgresql"]), ("no docker", "recipes", []),
    ("without postgres or redis", "recipes", []),
    ("no gpu, postgres and redis", "recipes", ["postgresql", "redis"]),
    ("python 3.11 with pytorch", "recipes", ["python3", "pytorch"]),
    ("n2-standard-4", "machine_type", "n2-standard-4"), ("n2-standard-4", "vcpus", None),
    ("a2-highgpu-1g", "machine_type", "a2-highgpu-1g"),
    # GPU counts in words, and VRAM
    ("four T4s", "gpu_count", 4), ("four T4s", "gpu_type", "nvidia-tesla-t4"),
    ("24GB of VRAM", "min_vram_gb", 24), ("24GB of VRAM", "memory_gb", None),
    ("a 40GB GPU", "min_vram_gb", 40), ("gpu memory: 16gb", "min_vram_gb", 16),
    ("GPU with 48GB", "min_vram_gb", 48), ("24GB of VRAM", "gpu_generic", True),
    # places: cities, countries, continents, with the other regions there as fallbacks
    ("Paris", "region", "europe-west9"), ("Delhi", "region", "asia-south2"),
    ("the Netherlands", "region", "europe-west4"), ("Amsterdam", "region", "europe-west4"),
    ("in Europe", "region_alternatives",
     ("europe-west2", "europe-west3", "europe-west10", "europe-west4", "europe-west6")),
    ("India", "region_alternatives", ("asia-south2",)), ("London", "region_alternatives", ()),
    # durations: an amount beats a vague phrase
    ("for the afternoon, say 4 hours", "ttl_hours", 4), ("for the afternoon", "ttl_hours", 4),
    ("for the afternoon, say 5 hours", "ttl_hours", 5), ("over the weekend", "ttl_hours", 48),
    ("just for today", "ttl_hours", 8), ("a fortnight", "ttl_hours", 336),
    # typos
    ("postgress", "recipes", ["postgresql"]), ("ubunut 24.04", "image_family", UBUNTU_2404),
    ("djnago", "recipes", ["django"]), ("a maintenance window", "image_family", None),
    ("median latency", "image_family", None),
    # stacks and new recipes
    ("LAMP stack", "recipes", ["apache2", "mysql", "php"]),
    ("MEAN stack", "recipes", ["mongodb", "nodejs"]), ("a lamp on my desk", "recipes", []),
    ("ruby on rails", "recipes", ["rails"]), ("jenkins", "recipes", ["jenkins"]),
    ("rabbitmq", "recipes", ["rabbitmq"]), ("kubectl", "recipes", ["kubectl"]),
    ("cuda", "recipes", ["cuda"]), ("apache kafka", "recipes", []),
    ("single node elasticsearch", "recipes", ["elasticsearch"]),
    ("a memory-hungry job", "memory_gb", None),
]  # fmt: skip


@pytest.mark.parametrize(
    ("text", "field", "expected"), READS, ids=[f"{t}-{f}" for t, f, _ in READS]
)
def test_read(advisor: RulesAdvisor, text: str, field: str, expected: Any) -> None:
    assert getattr(advisor.read(text), field) == expected


@pytest.mark.parametrize(
    ("text", "size"),
    [("tiny", "tiny"), ("a small box", "small"), ("medium", "medium"), ("large", "large"),
     ("big", "large"), ("extra large", "xlarge"), ("beefy", "xlarge"), ("huge", "huge")],
)  # fmt: skip
def test_size_words(advisor: RulesAdvisor, text: str, size: str) -> None:
    wants = advisor.read(text)
    assert wants.size is not None and wants.size.name == size


def test_nothing_understood_reads_as_empty(advisor: RulesAdvisor) -> None:
    assert advisor.read("hello there").is_empty()
    assert advisor.read("hello there") == Wants()


# -- properties -----------------------------------------------------------------------------

STEMS = NAME_STEM_VOCABULARY
FRAGMENTS = [
    "django", "postgres", "redis", "no", "not", "without", "gpu", "a T4", "2 L4s", "A100",
    "8xH100", "4 cpus", "0 cpus", "16GB ram", "1TB", "5gb disk", "for 2 hours", "90 minutes",
    "a week", "for 100 days", "0 hours", "london", "in europe", "us-east1", "asia-southeast3",
    "mexico", "windows", "windows 2019", "ubuntu 24.04", "ubuntu 20.04", "debian", "rocky 9",
    "spot", "on-demand", "tiny", "beefy", "n2-standard-4", "e2-micro", "g2-standard-4",
    "jupyter", "pytorch", "docker", "1h30", "an hour and a half", "half", "and", "or", ",",
    "99999999999999999999", "1e400", "0.001 minutes", "-", ".", "x", "São Paulo", "İ", "ß",
]  # fmt: skip
texts = st.one_of(
    st.text(max_size=200),
    st.lists(st.sampled_from(FRAGMENTS), max_size=12).map(" ".join),
    st.lists(st.one_of(st.sampled_from(FRAGMENTS), st.text(max_size=8)), max_size=10).map("".join),
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=texts)
def test_any_text_gives_a_valid_spec_or_an_advisor_error(text: str) -> None:
    advisor = make_advisor()
    try:
        spec = advisor.suggest(text)
    except AdvisorError as e:
        assert str(e) and "\n" not in str(e)
        return
    assert VmSpec.model_validate(spec.model_dump()) == spec
    # Nothing from the text is copied: every field is vocabulary, catalog or a number.
    catalog = default_catalog()
    assert spec.name.rsplit("-", 1)[0] in STEMS
    assert set(spec.packages) <= {r.name for r in RECIPES}
    assert catalog.is_offered(spec.machine_type, spec.region)
    assert catalog.image(spec.os_image).os_family == spec.os_family
    assert spec.disk_type in catalog.disk_types
    assert spec.gpu is None or spec.gpu.type in catalog.gpu_types
    assert advisor.suggest(text) == spec  # same text, same answer
