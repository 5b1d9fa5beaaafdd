"""Scoring the advisor against the labelled evaluation set in tests/data/advisor_eval.jsonl.

Each case is `{"id", "text", "expect": {...}}` or `{"id", "text", "error": "<substring>"}`; an
optional `"repeat": n` repeats the text n times (for the 10 kB case). A case with `expect` is
checked on every field in FIELDS, using the advisor's defaults where the label is silent, plus the
optional sizing fields it names. A case with `error` is right when the advisor refuses with a
message containing that substring.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bot.advisor import AdvisorError
from provisioning.spec import VmSpec

EVAL_SET = Path(__file__).resolve().parents[1] / "tests" / "data" / "advisor_eval.jsonl"

# Checked on every case that expects a spec; the value is the default when the label is silent.
FIELDS: dict[str, Any] = {
    "region": "us-central1",
    "gpu": None,
    "os_image": "ubuntu-2204-lts",
    "packages": [],
    "ttl_hours": 4.0,
    "spot": False,
    "disk_type": "pd-balanced",
}
# Checked only when a case names them.
OPTIONAL_FIELDS = ("machine_type", "disk_gb", "min_vcpus", "min_memory_gb")


@dataclass(frozen=True)
class Case:
    id: str
    text: str
    expect: Mapping[str, Any] | None
    error: str | None


@dataclass
class Outcome:
    case: Case
    fields: dict[str, bool]  # field -> right?
    got: dict[str, Any]

    @property
    def correct(self) -> bool:
        return all(self.fields.values())


@dataclass
class Score:
    outcomes: list[Outcome] = field(default_factory=list)

    @property
    def total(self) -> int:
        return len(self.outcomes)

    @property
    def fully_correct(self) -> int:
        return sum(o.correct for o in self.outcomes)

    @property
    def accuracy(self) -> float:
        return self.fully_correct / self.total if self.total else 0.0

    def per_field(self) -> dict[str, tuple[int, int]]:
        """field -> (right, checked)."""
        table: dict[str, list[int]] = {}
        for o in self.outcomes:
            for name, ok in o.fields.items():
                row = table.setdefault(name, [0, 0])
                row[0] += ok
                row[1] += 1
        return {k: (v[0], v[1]) for k, v in sorted(table.items())}

    @property
    def failures(self) -> list[Outcome]:
        return [o for o in self.outcomes if not o.correct]


def load_cases(path: Path = EVAL_SET) -> list[Case]:
    cases = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        raw = json.loads(line)
        cases.append(
            Case(
                id=raw["id"],
                text=raw["text"] * int(raw.get("repeat", 1)),
                expect=raw.get("expect"),
                error=raw.get("error"),
            )
        )
    return cases


def score(suggest: Callable[[str], VmSpec], cases: Iterable[Case]) -> Score:
    result = Score()
    for case in cases:
        result.outcomes.append(judge(case, suggest))
    return result


def judge(case: Case, suggest: Callable[[str], VmSpec]) -> Outcome:
    try:
        spec = suggest(case.text)
    except AdvisorError as exc:
        message = str(exc)
        if case.error is not None:
            ok = case.error.lower() in message.lower()
            return Outcome(case, {"error": ok}, {"error": message})
        return Outcome(case, {"error": False}, {"error": message})
    if case.expect is None:
        return Outcome(case, {"error": False}, {"spec": spec.model_dump(mode="json")})
    return Outcome(case, *_compare(spec, case.expect))


def _compare(spec: VmSpec, expect: Mapping[str, Any]) -> tuple[dict[str, bool], dict[str, Any]]:
    fields: dict[str, bool] = {}
    got: dict[str, Any] = {}
    actual = spec.model_dump(mode="json")
    for name, default in FIELDS.items():
        want = expect.get(name, default)
        have = actual[name]
        if name == "packages":
            want, have = sorted(want), sorted(have)
        elif name == "ttl_hours" and want is not None and have is not None:
            want, have = round(float(want), 3), round(float(have), 3)
        fields[name] = want == have
        got[name] = have
    for name in OPTIONAL_FIELDS:
        if name not in expect:
            continue
        if name == "min_vcpus":
            fields[name], got[name] = spec.vcpus >= expect[name], spec.vcpus
        elif name == "min_memory_gb":
            fields[name], got[name] = spec.memory_gb >= expect[name], spec.memory_gb
        else:
            fields[name], got[name] = actual[name] == expect[name], actual[name]
    return fields, got
