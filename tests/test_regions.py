"""Region selection: the seed's example as a table, and properties over any inputs."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from provisioning.catalog import default_catalog
from provisioning.regions import (
    Demand,
    NoRegion,
    Preferences,
    RegionChooser,
    Usage,
    candidates,
    explain_nowhere,
    geography,
    rank_regions,
)

PRIORITY = ("us-east1", "us-central1", "us-west1", "europe-west1")
EVERYWHERE = frozenset({*PRIORITY, "northamerica-northeast1", "asia-east1", "europe-west2"})


def prefs(**changes) -> Preferences:
    base = {"priority": PRIORITY, "fallback": "northamerica-northeast1"}
    return Preferences(**{**base, **changes})


def first(demand: Demand, usage: Usage, preferences: Preferences) -> str | None:
    ranked = rank_regions(demand, usage, preferences)
    return ranked[0].id if ranked else None


@pytest.mark.parametrize(
    ("case", "vcpus", "used", "requested", "expected"),
    [
        ("seed: us-east1 has room", 2, {}, None, "us-east1"),
        ("seed: us-east1 full at 8/8, next with room", 2, {"us-east1": 8}, None, "us-central1"),
        ("seed: 6/8 leaves no room for 4", 4, {"us-east1": 6}, None, "us-central1"),
        ("seed: exactly fills the cap", 2, {"us-east1": 6}, None, "us-east1"),
        (
            "seed: everything full, fallback",
            2,
            dict.fromkeys(PRIORITY, 8),
            None,
            "northamerica-northeast1",
        ),
        ("requested region first", 2, {}, "europe-west2", "europe-west2"),
        (
            "requested full: its geography next",
            2,
            {"europe-west2": 8},
            "europe-west2",
            "europe-west1",
        ),
        ("requested in the list", 2, {}, "us-west1", "us-west1"),
        ("bigger than any cap: fallback", 16, {}, None, "northamerica-northeast1"),
    ],
)
def test_seed_examples(case, vcpus, used, requested, expected) -> None:
    demand = Demand(vcpus=vcpus, offered=EVERYWHERE)
    assert first(demand, Usage(vcpus=used), prefs(requested=requested)) == expected, case


def test_ranking_lists_every_region_with_room_best_first() -> None:
    ranked = rank_regions(
        Demand(vcpus=2, offered=EVERYWHERE),
        Usage(vcpus={"us-central1": 8}),
        prefs(requested="europe-west2"),
    )
    assert [(r.id, r.why) for r in ranked] == [
        ("europe-west2", "requested"),
        ("europe-west1", "nearby"),
        ("us-east1", "priority"),
        ("us-west1", "priority"),
    ]
    assert ranked[0].vcpus_after == 2


def test_gpu_goes_only_where_it_is_offered() -> None:
    # An L4 machine offered in us-central1 and europe-west1 only.
    demand = Demand(vcpus=4, offered=frozenset({"us-central1", "europe-west1"}), gpu_type="L4")
    assert first(demand, Usage(), prefs()) == "us-central1"
    assert first(demand, Usage(vcpus={"us-central1": 8}), prefs()) == "europe-west1"


def test_fallback_without_the_machine_type_means_nowhere_and_says_why() -> None:
    demand = Demand(vcpus=4, offered=frozenset({"us-central1"}), gpu_type="nvidia-tesla-t4")
    usage = Usage(vcpus={"us-central1": 8})
    assert rank_regions(demand, usage, prefs()) == []
    message = explain_nowhere(demand, usage, prefs())
    assert message.startswith("Every region is full for 4 vCPUs with nvidia-tesla-t4")
    assert "us-central1 is at 8/8" in message and "VMBOT_REGION_CAPS" in message


def test_no_region_offering_it_says_where_it_is_offered() -> None:
    demand = Demand(vcpus=2, offered=frozenset({"asia-east1"}))
    message = explain_nowhere(demand, Usage(), prefs())
    assert "No region we use offers 2 vCPUs" in message and "asia-east1" in message


def test_real_quota_is_respected_even_for_the_fallback() -> None:
    demand = Demand(vcpus=4, offered=EVERYWHERE)
    quota = {"us-east1": 2.0, "us-central1": 100.0}
    assert first(demand, Usage(quota_free=quota), prefs()) == "us-central1"
    full = dict.fromkeys(EVERYWHERE, 0.0)
    assert rank_regions(demand, Usage(quota_free=full), prefs()) == []
    assert "quota left" in explain_nowhere(demand, Usage(quota_free=full), prefs())


def test_per_region_caps() -> None:
    demand = Demand(vcpus=10, offered=EVERYWHERE)
    assert first(demand, Usage(), prefs(caps={"us-west1": 16})) == "us-west1"


def test_geography_groups_north_america() -> None:
    assert geography("northamerica-northeast1") == geography("us-east1") == "north-america"
    assert geography("europe-west2") == "europe"
    assert [r for r, _ in candidates(prefs(requested="northamerica-northeast2"))][:4] == [
        "northamerica-northeast2",
        "us-east1",
        "us-central1",
        "us-west1",
    ]


def test_chooser_reads_the_catalog_for_attached_gpus() -> None:
    chooser = RegionChooser(catalog=default_catalog(), priority=PRIORITY, fallback="us-east1")
    demand = chooser.demand("n1-standard-4", 4, "nvidia-tesla-t4")
    assert demand.offered == {"us-central1"}  # the T4 is only listed there
    assert chooser.choose(demand, None, dict).id == "us-central1"
    with pytest.raises(NoRegion, match="full"):
        chooser.choose(demand, None, lambda: {"us-central1": 8.0})


# -- properties -------------------------------------------------------------------------

REGIONS = sorted(EVERYWHERE | {"asia-south1", "me-west1"})
region = st.sampled_from(REGIONS)


@st.composite
def scenario(draw):
    priority = tuple(draw(st.lists(region, unique=True, max_size=6)))
    preferences = Preferences(
        priority=priority,
        fallback=draw(region),
        requested=draw(st.none() | region),
        default_cap=draw(st.integers(0, 16)),
        caps=draw(st.dictionaries(region, st.integers(0, 32), max_size=3)),
    )
    demand = Demand(
        vcpus=draw(st.sampled_from([0.25, 1, 2, 4, 8, 12])),
        offered=frozenset(draw(st.sets(region))),
        gpu_type=draw(st.none() | st.just("nvidia-l4")),
    )
    usage = Usage(
        vcpus=draw(st.dictionaries(region, st.integers(0, 20).map(float))),
        quota_free=draw(st.dictionaries(region, st.integers(0, 24).map(float), max_size=4)),
    )
    return demand, usage, preferences


@given(scenario())
def test_never_exceeds_a_cap_except_the_fallback(case) -> None:
    demand, usage, preferences = case
    for chosen in rank_regions(demand, usage, preferences):
        if chosen.why != "fallback":
            assert usage.vcpus.get(chosen.id, 0) + demand.vcpus <= preferences.cap(chosen.id)
        assert chosen.vcpus_after == usage.vcpus.get(chosen.id, 0) + demand.vcpus


@given(scenario())
def test_never_picks_a_region_without_the_machine_or_gpu_or_quota(case) -> None:
    demand, usage, preferences = case
    for chosen in rank_regions(demand, usage, preferences):
        assert chosen.id in demand.offered
        assert usage.quota_free.get(chosen.id, float("inf")) >= demand.vcpus


@given(scenario())
def test_deterministic_and_without_repeats(case) -> None:
    demand, usage, preferences = case
    once = rank_regions(demand, usage, preferences)
    assert once == rank_regions(demand, usage, preferences)
    assert len({r.id for r in once}) == len(once)


@given(scenario())
def test_fallback_only_when_nothing_else_fits(case) -> None:
    demand, usage, preferences = case
    ranked = rank_regions(demand, usage, preferences)
    fallbacks = [r for r in ranked if r.why == "fallback"]
    assert not fallbacks or ranked == fallbacks
    if ranked and ranked[0].why != "requested" and preferences.requested is not None:
        # The requested region was passed over only because it could not take the VM.
        assert preferences.requested not in {r.id for r in ranked if r.why != "fallback"}
    if not ranked:
        assert explain_nowhere(demand, usage, preferences)
