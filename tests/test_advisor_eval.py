"""The labelled evaluation set (tests/data/advisor_eval.jsonl): well-formed, and the rules engine
gets at least 95% of it fully right. `make bench` prints the same score with timings."""

from __future__ import annotations

from bench.evaluate import FIELDS, OPTIONAL_FIELDS, load_cases, score
from bot.advisor.rules import RulesAdvisor
from provisioning.catalog import default_catalog

CASES = load_cases()


def test_the_set_is_big_enough_and_well_formed() -> None:
    assert len(CASES) >= 150
    assert len({c.id for c in CASES}) == len(CASES)
    known = set(FIELDS) | set(OPTIONAL_FIELDS)
    for case in CASES:
        assert (case.expect is None) != (case.error is None), case.id
        assert case.expect is None or set(case.expect) <= known, case.id


def test_the_set_covers_adversarial_text() -> None:
    texts = [c.text for c in CASES]
    assert "" in texts
    assert any(len(t) >= 10_240 for t in texts)
    assert any("ignore previous instructions" in t for t in texts)
    assert any(ch in t for t in texts for ch in ";`$|")
    assert any(ord(ch) > 0xFFFF for t in texts for ch in t)  # emoji


def test_rules_engine_gets_at_least_95_percent_fully_right() -> None:
    advisor = RulesAdvisor(default_catalog(), name_suffix=lambda: "0000")
    result = score(advisor.suggest, CASES)
    wrong = [(o.case.id, {k: o.got.get(k) for k, ok in o.fields.items() if not ok})
             for o in result.failures]  # fmt: skip
    assert result.accuracy >= 0.95, wrong
