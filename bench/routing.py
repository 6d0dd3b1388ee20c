"""Review routing replayed on simulated rounds: the paper's agreement rule against routing by reliability.

Judges and reviewers are simulated with known, uneven reliability per criterion (``mora.review.simulation``).
Per scenario and run: a history of ``--history`` sets routed by the paper's rule, with audits, people
deciding every set sent to them; the reliability policy built from that history exactly as a round builds
it (``mora.review.routing.build_policy``: fit on the sets that were not audited, threshold certified on
the audited ones); then ``--sets`` fresh sets routed by three rules:

- ``agreement``: the paper's rule (plus the audit share, which people also decide);
- ``reliability``: the certified threshold (the paper's rule when nothing certifies);
- ``uncalibrated``: the control, accepting when the model's own probability reaches the target, without
  certification: it shows what the certification is for where judges' errors agree (the model, which
  assumes independent judges, then overrates agreement).

Per rule: review load (sets people see, audits included, per set), precision of accepted sets against the
simulated people's choice (pooled over runs, 95% Wilson interval), and in how many runs the precision of
the accepted sets (Rao-Blackwellised over the people's noise, on the fresh sets) held the target. The
guarantee is that it holds in at least 95% of runs. Last line, for the first scenario (reliability over
agreement): ``review_load_ratio=X precision_delta=Y``; target ratio <= 0.5, delta >= -0.01.
"""

from __future__ import annotations

import argparse
import math
import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from mora.datasets.agreement import wilson  # noqa: E402
from mora.judges.verdict import ACCEPTED  # noqa: E402
from mora.review.reliability import SetEvidence  # noqa: E402
from mora.review.routing import AGREEMENT, RELIABILITY, Certificate, RoutingPolicy, build_policy  # noqa: E402
from mora.review.settings import ReviewConfig  # noqa: E402
from mora.review.simulation import Scenario, people_decide, simulate_set  # noqa: E402

CHANCE = (0.3, 0.3)
KEYS = ["visual_clarity", "object_consistency", "temporal_coherence", "narrative_coherence", "colour_lighting",
        "realism", "content_relevance", "aesthetic_quality", "noise_artifacts", "motion_smoothness"]  # the paper's ten
SCENARIOS = {s.name: s for s in [
    # uneven: each judge is strong where the other is weak, two criteria where both are near chance (and
    # fall for the same decoy), one where a judge is nearly always right
    Scenario("uneven", {"visual_clarity": (0.9, 0.45), "object_consistency": (0.45, 0.9),
                        "temporal_coherence": (0.85, 0.5), "narrative_coherence": (0.5, 0.85),
                        "colour_lighting": (0.9, 0.55), "realism": (0.55, 0.9),
                        "content_relevance": (0.97, 0.5), "aesthetic_quality": (0.85, 0.8),
                        "noise_artifacts": CHANCE, "motion_smoothness": CHANCE},
             shared={"noise_artifacts": 0.5, "motion_smoothness": 0.5}),
    # both judges fairly good, but when both are wrong they mostly fall for the same decoy (a flashy candidate
    # people do not like): agreement is worth less than independent judges would make it
    Scenario("shared-decoys", dict.fromkeys(KEYS, (0.6, 0.6)), shared=dict.fromkeys(KEYS, 0.9)),
]}
# (scenario, target): the first is the headline (the last line); "matched" certifies the precision the paper's
# rule has there, so the two rules are compared at equal precision
CASES = [("uneven", "matched"), ("uneven", "0.9"), ("shared-decoys", "0.9")]


@dataclass
class Arm:
    sets: int = 0
    sent: int = 0
    accepted: int = 0
    matches: int = 0
    runs: int = 0
    certified: int = 0
    held: int = 0
    thresholds: list[float] = field(default_factory=list)


def replay(policy: RoutingPolicy, fresh: list, people_accuracy: float, candidates: int, arm: Arm,
           target: float) -> None:
    accepted = sent = matches = 0
    expected = 0.0  # Rao-Blackwellised: P(people choose the winner | the hidden best), summed over accepted sets
    for s in fresh:
        rows = policy.route(s.rows, 2, draw=s.draw)
        routing = rows[0]["routing"]
        if routing["decision"] != ACCEPTED or routing["audited"]:
            sent += 1
        if routing["decision"] == ACCEPTED:
            accepted += 1
            matches += s.people == routing["winner"]
            expected += (people_accuracy if routing["winner"] == s.best
                         else (1 - people_accuracy) / (candidates - 1))
    arm.sets += len(fresh)
    arm.sent, arm.accepted, arm.matches = arm.sent + sent, arm.accepted + accepted, arm.matches + matches
    arm.runs += 1
    if policy.rule == RELIABILITY:
        arm.certified += 1
        arm.thresholds.append(policy.threshold)
        arm.held += accepted == 0 or expected / accepted >= target


def history(scenario: Scenario, count: int, audit_share: float, rng: random.Random, run: int) -> list[SetEvidence]:
    """Sets routed by the paper's rule, audited at random; people decide every set sent to them."""
    paper = RoutingPolicy(AGREEMENT, AGREEMENT, audit_share, note="")
    out = []
    for i in range(count):
        s = simulate_set(scenario, f"h{run}-it1/p{i:05d}", rng)
        rows = paper.route(s.rows, 1, draw=rng.random())
        routing = rows[0]["routing"]
        if routing["decision"] != ACCEPTED or routing["audited"]:
            rows = people_decide(rows, s.people, s.reviewer)
        out.append(SetEvidence.from_rows(rows, 1))
    return out


def paper_precision(scenario: Scenario, count: int = 20000) -> float:
    """The paper's rule's precision against people in this scenario (Rao-Blackwellised over their noise)."""
    rng, q, accepted, expected = random.Random(f"{scenario.name}-paper"), _people_accuracy(scenario), 0, 0.0
    for i in range(count):
        s = simulate_set(scenario, f"paper/p{i:05d}", rng)
        winner = next((r["candidate_index"] for r in s.rows if r["selected"]), None)
        if winner is not None:
            accepted += 1
            expected += q if winner == s.best else (1 - q) / (scenario.candidates - 1)
    return expected / accepted


def _people_accuracy(scenario: Scenario) -> float:
    return sum(scenario.reviewers.values()) / len(scenario.reviewers)


def run_scenario(scenario: Scenario, args, review: ReviewConfig) -> dict[str, Arm]:
    arms = {"agreement": Arm(), "reliability": Arm(), "uncalibrated": Arm()}
    people_accuracy = _people_accuracy(scenario)
    for run in range(args.runs):
        rng = random.Random(f"{scenario.name}-{run}")
        policy = build_policy(review, history(scenario, args.history, review.audit_share, rng, run))
        fresh = []
        for i in range(args.sets):
            s = simulate_set(scenario, f"f{run}-it2/p{i:05d}", rng)
            s.draw = rng.random()
            fresh.append(s)
        uncalibrated = RoutingPolicy(RELIABILITY, RELIABILITY, review.audit_share, "", policy.model,
                                     Certificate(review.target_precision, review.confidence, 0, 0,
                                                 threshold=review.target_precision))
        paper = RoutingPolicy(AGREEMENT, AGREEMENT, review.audit_share, "", policy.model)
        for name, rule in (("agreement", paper), ("reliability", policy), ("uncalibrated", uncalibrated)):
            replay(rule, fresh, people_accuracy, scenario.candidates, arms[name], review.target_precision)
    return arms


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=100, help="simulated runs per scenario")
    parser.add_argument("--history", type=int, default=8000, help="sets decided under the paper's rule first")
    parser.add_argument("--sets", type=int, default=3000, help="fresh sets routed per run")
    parser.add_argument("--audit-share", type=float, default=0.05)
    parser.add_argument("--cases", nargs="*", default=[f"{name}@{target}" for name, target in CASES],
                        help="SCENARIO@TARGET: a precision, or 'matched' (the paper's rule's, rounded up)")
    args = parser.parse_args()

    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"review routing: {args.runs} runs x ({args.history} history + {args.sets} fresh sets), "
                        f"audit {args.audit_share:.0%}, 95% confidence")
    for col in ("scenario", "target", "rule", "review load", "accepted", "precision vs people [95% Wilson]",
                "runs certified", "runs holding target", "threshold (median)"):
        table.add_column(col)
    headline, verdicts, ok = None, [], True
    start = time.perf_counter()
    for case in args.cases:
        name, wanted = case.split("@")
        scenario = SCENARIOS[name]
        target = math.ceil(paper_precision(scenario) * 100) / 100 if wanted == "matched" else float(wanted)
        review = ReviewConfig(routing="reliability", target_precision=target, audit_share=args.audit_share)
        arms = run_scenario(scenario, args, review)
        for name, arm in arms.items():
            low, high = wilson(arm.matches, arm.accepted)
            precision = f"{arm.matches / arm.accepted:.3f} [{low:.3f}, {high:.3f}]" if arm.accepted else "-"
            lo, hi = wilson(arm.sent, arm.sets)
            median = sorted(arm.thresholds)[len(arm.thresholds) // 2] if arm.thresholds else None
            table.add_row(scenario.name, f"{target:.2f}", name, f"{arm.sent / arm.sets:.3f} [{lo:.3f}, {hi:.3f}]",
                          f"{arm.accepted / arm.sets:.3f}", precision, f"{arm.certified}/{arm.runs}",
                          f"{arm.held}/{arm.certified}" if arm.certified else "-",
                          f"{median:.3f}" if median is not None else "-")
        held = arms["reliability"]
        if held.certified:
            share = held.held / held.certified
            verdicts.append(f"{case}: the certified precision held in {held.held} of {held.certified} certified runs "
                            f"({share:.1%}; the guarantee: at least 95%)")
            ok = ok and share >= 0.95
        loose = arms["uncalibrated"]
        verdicts.append(f"{case}: without certification (accept at probability >= target) the target held in "
                        f"{loose.held} of {loose.certified} runs")
        if headline is None:
            agree, rel = arms["agreement"], arms["reliability"]
            headline = (rel.sent / rel.sets) / (agree.sent / agree.sets), \
                rel.matches / max(rel.accepted, 1) - agree.matches / max(agree.accepted, 1)
    Console(width=200).print(table)
    print(f"{time.perf_counter() - start:.0f} s on a shared machine")
    for line in verdicts:
        print(line)
    ratio, delta = headline
    ok = ok and ratio <= 0.5 and delta >= -0.01
    print(f"review_load_ratio={ratio:.3f} precision_delta={delta:+.3f}")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
