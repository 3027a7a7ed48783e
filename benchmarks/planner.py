"""The offline planner: exact-match accuracy on request sets, and its latency.

Usage:
    python benchmarks/planner.py [--set NAME=PATH ...] [--show-fail] [--only NAME]

Accuracy is scored with the rules of ``../shared/checks/score_planner.py`` (reimplemented
here, unchanged): a case passes when every expected call is matched by a distinct produced
call of the same tool whose args hold every expected key (strings case-insensitive, with "-"
and " " read as "_"; stem lists as sets; numbers within the case's or the default tolerance),
and no produced call is left over (a leftover ``describe`` is forgiven). Cases may give
``alt`` expectations. The default sets are the shared examples, the project's request set
(``tests/data/planner_cases.jsonl``), its held-out part (``tests/data/planner_heldout.jsonl``,
never used for tuning) and a second held-out set of vocal-style requests
(``tests/data/planner_vocals_heldout2.jsonl``, written before the vocal grammar was tuned and
scored once before and once after); a per-kind breakdown follows each set whose cases carry a ``kind``.

Latency: each request of every set planned again with a warm planner (model and intent bank
loaded): median and 95th percentile in milliseconds over all requests, and over those that
consulted the intent bank (a sentence embedding) and those the grammar placed alone; and the
warm-up time (lexicon, model and bank load) of a fresh planner in this process.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from assistant.offline import OfflinePlanner  # noqa: E402
from assistant.planner import PlanContext  # noqa: E402

DEFAULT_SETS = {
    "shared": ROOT.parent / "shared" / "planner_examples.jsonl",
    "cases": ROOT / "tests" / "data" / "planner_cases.jsonl",
    "heldout": ROOT / "tests" / "data" / "planner_heldout.jsonl",
    "vocals-heldout2": ROOT / "tests" / "data" / "planner_vocals_heldout2.jsonl",
}
DEFAULT_TOL = {"bpm": 2.0, "semitones": 0.01, "amount_db": 1.0, "seconds": 1.5,
               "amount": 0.15, "tempo_pct": 1.0, "times": 0, "steps": 0}  # fmt: skip


def _norm(value: Any) -> Any:
    if isinstance(value, str):
        return value.strip().lower().replace("-", "_").replace(" ", "_")
    if isinstance(value, list):
        return sorted(_norm(x) for x in value)
    return value


def _arg_ok(key: str, want: Any, got: Any, tol: dict[str, float]) -> bool:
    if got is None:
        return False
    if isinstance(want, (int, float)) and not isinstance(want, bool):
        try:
            return abs(float(got) - float(want)) <= tol.get(key, DEFAULT_TOL.get(key, 1e-6)) + 1e-9
        except (TypeError, ValueError):
            return False
    return _norm(want) == _norm(got)


def _call_ok(want: dict, got: dict, tol: dict[str, float]) -> bool:
    if _norm(want["tool"]) != _norm(got.get("tool", "")):
        return False
    gargs = got.get("args") or {}
    return all(_arg_ok(k, v, gargs.get(k), tol) for k, v in want.get("args", {}).items())


def _match(expect: list[dict], produced: list[dict], tol: dict[str, float]) -> bool:
    left = list(produced)
    for want in expect:
        for i, got in enumerate(left):
            if _call_ok(want, got, tol):
                del left[i]
                break
        else:
            return False
    return all(_norm(g.get("tool", "")) == "describe" for g in left)


def case_passes(case: dict, produced: list[dict]) -> bool:
    """True when ``produced`` matches the case's ``expect`` or one of its ``alt`` lists."""
    tol = {**DEFAULT_TOL, **case.get("tol", {})}
    return any(_match(expect, produced, tol) for expect in [case["expect"], *case.get("alt", [])])


def read_cases(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def plan_case(planner: OfflinePlanner, case: dict) -> list[dict]:
    """The calls the planner makes for one case."""
    context = PlanContext(previous_calls=tuple(case.get("context", [])))
    return [dict(call) for call in planner.plan(case["request"], context).calls]


def score(planner: OfflinePlanner, cases: list[dict], show_fail: bool) -> tuple[int, Counter, Counter]:
    """Passes, and passes and totals per kind."""
    passed, by_kind, totals = 0, Counter(), Counter()
    for case in cases:
        produced = plan_case(planner, case)
        ok = case_passes(case, produced)
        passed += ok
        kind = case.get("kind", "-")
        totals[kind] += 1
        by_kind[kind] += ok
        if show_fail and not ok:
            context = f" (after {json.dumps(case['context'])})" if case.get("context") else ""
            print(f"  FAIL {case['request']!r}{context}\n    want {json.dumps(case['expect'])}\n    got  {json.dumps(produced)}")
    return passed, by_kind, totals


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--set", action="append", default=[], metavar="NAME=PATH", help="a request set (default: shared, cases, heldout)"
    )
    parser.add_argument("--only", action="append", default=[], metavar="NAME", help="score only these default sets")
    parser.add_argument("--show-fail", action="store_true", help="print every failing case")
    args = parser.parse_args(argv)
    sets = dict(item.split("=", 1) for item in args.set) or {
        name: str(path) for name, path in DEFAULT_SETS.items() if path.exists() and (not args.only or name in args.only)
    }

    started = time.perf_counter()
    planner = OfflinePlanner()
    planner.warm()
    warm_s = time.perf_counter() - started
    model = "loaded" if planner.classifier() is not None else "unavailable"
    print(f"warm-up: {warm_s:.2f} s (lexicon, sentence model {model}, intent bank)")

    requests: list[dict] = []
    for name, path in sets.items():
        cases = read_cases(Path(path))
        requests += cases
        print(f"\n{name} ({path}):")
        passed, by_kind, totals = score(planner, cases, args.show_fail)
        print(f"  accuracy: {passed}/{len(cases)} = {passed / len(cases):.1%}")
        if len(totals) > 1:
            print("  by kind: " + ", ".join(f"{kind} {by_kind[kind]}/{totals[kind]}" for kind in sorted(totals)))

    bank = planner.classifier()
    embedded = [0]
    if bank is not None:
        classify = bank.classify

        def counted(text: str):
            embedded[0] += 1
            return classify(text)

        bank.classify = counted  # type: ignore[method-assign]
    times: dict[str, list[float]] = {"all": [], "intent bank": [], "grammar only": []}
    for case in requests:
        context = PlanContext(previous_calls=tuple(case.get("context", [])))
        before = embedded[0]
        start = time.perf_counter()
        planner.plan(case["request"], context)
        elapsed = (time.perf_counter() - start) * 1000.0
        times["all"].append(elapsed)
        times["intent bank" if embedded[0] > before else "grammar only"].append(elapsed)
    print()
    for name, values in times.items():
        if values:
            values.sort()
            p95 = values[min(len(values) - 1, int(round(0.95 * (len(values) - 1))))]
            print(f"latency, {name} ({len(values)} requests, warm): median {statistics.median(values):.1f} ms, "
                  f"p95 {p95:.1f} ms, max {values[-1]:.1f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
