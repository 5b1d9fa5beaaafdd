"""`python -m bench`: accuracy and parse latency of the rules advisor on the evaluation set."""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from collections.abc import Sequence

from bench.evaluate import EVAL_SET, Case, Score, load_cases, score
from bot.advisor import AdvisorError
from bot.advisor.rules import RulesAdvisor
from provisioning.catalog import default_catalog

TARGET_ACCURACY = 0.95
TARGET_P99_MS = 5.0


def latencies_ms(advisor: RulesAdvisor, cases: Sequence[Case], rounds: int) -> list[float]:
    """Wall time of one `suggest` per case, `rounds` times over the set (after one warm-up)."""
    samples: list[float] = []
    for round_no in range(rounds + 1):
        for case in cases:
            start = time.perf_counter()
            try:
                advisor.suggest(case.text)
            except AdvisorError:
                pass
            elapsed = (time.perf_counter() - start) * 1000
            if round_no:  # round 0 warms caches and regexes
                samples.append(elapsed)
    return samples


def percentile(samples: Sequence[float], q: float) -> float:
    ordered = sorted(samples)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


def report(result: Score, samples: Sequence[float], rounds: int) -> str:
    lines = [
        f"rules advisor on {EVAL_SET.name}: {result.total} requests",
        f"python {platform.python_version()} on {platform.machine()}",
        "",
        "per-field accuracy (right / checked):",
    ]
    for name, (right, checked) in result.per_field().items():
        lines.append(f"  {name:<14} {right:>4} / {checked:<4} {right / checked:7.1%}")
    lines += [
        "",
        f"fully correct:   {result.fully_correct} / {result.total} = {result.accuracy:.1%}"
        f"   (target ≥ {TARGET_ACCURACY:.0%})",
        f"parse latency:   median {statistics.median(samples):.3f} ms, "
        f"p99 {percentile(samples, 0.99):.3f} ms, max {max(samples):.3f} ms"
        f"   ({len(samples)} samples, {rounds} rounds; target p99 < {TARGET_P99_MS:g} ms)",
    ]
    if result.failures:
        lines += ["", "wrong:"]
        for o in result.failures:
            bad = {k: o.got.get(k) for k, ok in o.fields.items() if not ok}
            lines.append(f"  {o.case.id}: {o.case.text[:70]!r} -> {bad}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--rounds", type=int, default=20, help="timed passes over the set")
    args = parser.parse_args(argv)
    advisor = RulesAdvisor(default_catalog(), name_suffix=lambda: "0000")
    cases = load_cases()
    result = score(advisor.suggest, cases)
    samples = latencies_ms(advisor, cases, args.rounds)
    print(report(result, samples, args.rounds))
    ok = result.accuracy >= TARGET_ACCURACY and percentile(samples, 0.99) < TARGET_P99_MS
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
