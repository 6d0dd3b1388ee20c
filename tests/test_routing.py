"""Review routing without Prefect: the reliability model, the certified threshold, the rule, the review queue and
the precision figures, on simulated judges and reviewers whose reliability is known (``mora.review.simulation``)."""

import random

import pytest

from mora.config import load_config
from mora.judges.verdict import ACCEPTED, DISCARDED, NEEDS_REVIEW
from mora.review.ordering import AUDIT_FIRST, priority, why
from mora.review.precision import routing_table
from mora.review.reliability import ReliabilityModel, SetEvidence, fit, reliability_table
from mora.review.routing import (
    AGREEMENT,
    RELIABILITY,
    Certificate,
    RoutingPolicy,
    build_policy,
    certify,
    most_misses,
    needed,
    threshold_grid,
)
from mora.review.settings import ReviewConfig
from mora.review.simulation import Scenario, people_decide, simulate_set

TRUTH = {"visual_clarity": (0.95, 0.5), "temporal_coherence": (0.5, 0.9), "aesthetic_quality": (0.3, 0.3)}
PEOPLE = {"ann@x": 0.97, "bob@x": 0.9}
SCENARIO = Scenario("test", TRUTH, reviewers=PEOPLE)


def decided_history(scenario: Scenario, count: int, audit_share: float, seed: int,
                    decide=lambda routing: True) -> list[SetEvidence]:
    """Sets routed by the paper's rule with audits; people decide what is sent to them (and ``decide`` allows)."""
    rng, paper = random.Random(seed), RoutingPolicy(AGREEMENT, AGREEMENT, audit_share, "")
    out = []
    for i in range(count):
        s = simulate_set(scenario, f"r{seed}-it001-x/p{i:05d}", rng)
        rows = paper.route(s.rows, 1, draw=rng.random())
        routing = rows[0]["routing"]
        if (routing["decision"] != ACCEPTED or routing["audited"]) and decide(routing):
            rows = people_decide(rows, s.people, s.reviewer)
        out.append(SetEvidence.from_rows(rows, 1))
    return out


def test_the_model_recovers_known_reliabilities_from_simulated_decisions():
    model = fit(decided_history(SCENARIO, 3000, 0.05, seed=1))
    table = {(r["annotator"], r["criterion_or_reviewer"]): r for r in reliability_table(model)}
    for criterion, accuracies in TRUTH.items():
        for judge, truth in zip(("llava-onevision", "qwen2-vl"), accuracies, strict=True):
            row = table[(judge, criterion)]
            assert row["accuracy"] == pytest.approx(truth, abs=0.05), (judge, criterion, row)
            assert row["low"] - 0.02 <= truth <= row["high"] + 0.02
    for name, truth in PEOPLE.items():
        assert table[("people", name)]["accuracy"] == pytest.approx(truth, abs=0.04)
    assert model.people == pytest.approx(sum(PEOPLE.values()) / 2, abs=0.03)
    # what a set is worth follows: a confident pick of the reliable judge outweighs the other judge
    evidence = SetEvidence("s", 2, "visual_clarity", (0, 1, 2, 3), {"llava-onevision": 2, "qwen2-vl": 0},
                           {"llava-onevision": 0.9, "qwen2-vl": 0.9})
    best = model.best(evidence)
    assert max(best, key=best.get) == 2 and best[2] > 0.85
    unsure = {"llava-onevision": 0.3, "qwen2-vl": 0.3}  # below both judges' median confidence
    chance = SetEvidence("s", 2, "aesthetic_quality", (0, 1, 2, 3), {"llava-onevision": 1, "qwen2-vl": 1}, unsure)
    good = SetEvidence("s", 2, "visual_clarity", (0, 1, 2, 3), {"llava-onevision": 1, "qwen2-vl": 1}, unsure)
    assert model.best(chance)[1] < 0.6 < model.best(good)[1]  # two near-chance judges agreeing prove little


def test_without_human_decisions_every_accuracy_stays_at_chance():
    rng = random.Random(0)
    sets = [SetEvidence.from_rows(simulate_set(SCENARIO, f"r/p{i}", rng).rows, 1) for i in range(200)]
    model = fit(sets)
    assert model.decisions == 0 and not model.annotators
    assert model.skill("llava-onevision", "visual_clarity", 0.9) == pytest.approx(0.25)


def test_the_test_is_the_exact_binomial_one():
    assert needed(0.9, 0.95) == 29  # 0.9^29 = 0.047 <= 0.05 < 0.9^28
    assert most_misses(100, 0.9, 0.95) == 4  # P(Bin(100, 0.1) <= 4) = 0.024, <= 5: 0.058
    assert most_misses(28, 0.9, 0.95) == -1 and most_misses(0, 0.9, 0.95) == -1


def test_certification_holds_its_error_rate_where_no_threshold_meets_the_target():
    # precision above every threshold is just below the target: any certificate is a false one; at 95%
    # confidence at most 5% of draws may produce one (fixed-sequence testing controls the whole sequence)
    target, precision, false, draws = 0.9, 0.895, 0, 600
    rng = random.Random(0)
    for _ in range(draws):
        scores = [rng.random() for _ in range(400)]
        matches = [rng.random() < precision for _ in scores]
        grid = threshold_grid([rng.random() for _ in range(4000)], len(scores), target, 0.95)
        false += certify(scores, matches, grid, target, 0.95).certified
    assert false / draws <= 0.05 + 2.5 * (0.05 * 0.95 / draws) ** 0.5, false


def test_certification_finds_a_threshold_when_agreement_rises_with_the_score():
    rng = random.Random(3)
    scores = [rng.random() for _ in range(3000)]
    matches = [rng.random() < s for s in scores]  # a calibrated score
    grid = threshold_grid([rng.random() for _ in range(20000)], len(scores), 0.9, 0.95)
    cert = certify(scores, matches, grid, 0.9, 0.95)
    assert cert.certified and cert.lower >= 0.9 and 0.75 < cert.threshold < 0.9
    assert "certified" in cert.describe() and f"{cert.misses} of those" in cert.describe()


def test_routing_never_certifies_when_the_data_cannot():
    review = ReviewConfig(routing="reliability", target_precision=0.9)
    # no human decision at all
    rng = random.Random(4)
    fresh = [SetEvidence.from_rows(simulate_set(SCENARIO, f"r/p{i}", rng).rows, 1) for i in range(500)]
    policy = build_policy(review, fresh)
    assert policy.rule == AGREEMENT and policy.requested == RELIABILITY
    assert "0 audited human decisions" in policy.note and f"at least {needed(0.9, 0.95)}" in policy.note
    # decisions, but too few audited ones (1% of 1000 sets)
    policy = build_policy(review, decided_history(SCENARIO, 1000, 0.01, seed=5))
    assert policy.rule == AGREEMENT and not policy.certificate.certified
    # plenty of audited decisions, but judges at chance everywhere: nothing reaches 0.9
    chance = Scenario("chance", dict.fromkeys(TRUTH, (0.25, 0.25)), reviewers=PEOPLE)
    for seed in range(3):
        policy = build_policy(review, decided_history(chance, 2000, 0.2, seed=seed))
        assert policy.rule == AGREEMENT and policy.certificate.calibration > 300
        assert "no threshold certifies" in policy.note
    # audited sets people left undecided are no calibration data
    policy = build_policy(review, decided_history(SCENARIO, 2000, 0.2, seed=6, decide=lambda r: not r["audited"]))
    assert policy.rule == AGREEMENT and policy.certificate.calibration == 0


def test_reliable_judges_and_enough_audits_certify_a_threshold_that_holds():
    review = ReviewConfig(routing="reliability", target_precision=0.85)
    policy = build_policy(review, decided_history(SCENARIO, 6000, 0.1, seed=7))
    assert policy.rule == RELIABILITY and policy.certificate.certified, policy.note
    assert policy.note.startswith("reliability: threshold") and policy.certificate.lower >= 0.85
    # on fresh sets of the same kind, the accepted ones agree with people at least as often as promised
    rng, accepted, agreed, sent = random.Random(8), 0, 0.0, 0
    q = sum(PEOPLE.values()) / len(PEOPLE)
    for i in range(4000):
        s = simulate_set(SCENARIO, f"f/p{i}", rng)
        routing = policy.route(s.rows, 2, draw=1.0)[0]["routing"]
        if routing["decision"] == ACCEPTED:
            accepted += 1
            agreed += q if routing["winner"] == s.best else (1 - q) / 3
        else:
            sent += 1
    assert agreed / accepted >= 0.85 and sent < 4000


def _rows(picks: list[int], criterion: str = "visual_clarity", gated: tuple[int, ...] = ()) -> list[dict]:
    judges = [{"judge": name, "ranking": [p] + [c for c in range(4) if c != p], "confidence": 0.9,
               "abstained": False, "reason": None} for name, p in zip(("llava-onevision", "qwen2-vl"), picks,
                                                                      strict=True)]
    agree = len(set(picks)) == 1 and picks[0] not in gated
    decision = DISCARDED if len(gated) == 4 else ACCEPTED if agree else NEEDS_REVIEW
    return [{"set_id": "r/p00000", "candidate_index": c, "gate_failures": ["motion"] if c in gated else [],
             "criterion": criterion, "judges": judges, "decision": decision, "decision_source": "judges",
             "decision_reason": "judges agree" if agree else "judges disagree (...)",
             "selected": agree and c == picks[0], "review": None, "routing": None} for c in range(4)]


def _reliability_policy(threshold: float, audit_share: float = 0.05) -> RoutingPolicy:
    model = ReliabilityModel(cuts={"llava-onevision": 0.5, "qwen2-vl": 0.5}, decisions=100, people=0.95,
                             judge_criteria={"llava-onevision|visual_clarity": 0.97, "qwen2-vl|visual_clarity": 0.4},
                             judges={"llava-onevision": 0.7, "qwen2-vl": 0.5})
    cert = Certificate(0.9, 0.95, 300, 29, threshold=threshold, accepted=200, misses=5, lower=0.92)
    return RoutingPolicy(RELIABILITY, RELIABILITY, audit_share, "test", model, cert)


def test_the_reliability_rule_accepts_a_reliable_judges_pick_and_sends_the_rest_with_a_reason():
    policy = _reliability_policy(threshold=0.85)
    rows = policy.route(_rows([2, 0]), 2, draw=0.9)  # the judges disagree; the reliable one picks 2
    first = rows[0]
    assert first["decision"] == ACCEPTED and first["decision_source"] == "judges-reliability"
    assert [r["selected"] for r in rows] == [False, False, True, False]
    assert first["routing"]["winner"] == 2 and first["routing"]["probability"] >= 0.85
    assert first["routing"] | {"probability": None} == {"rule": RELIABILITY, "decision": ACCEPTED, "winner": 2,
                                                         "probability": None, "threshold": 0.85, "audited": False,
                                                         "why": None}
    strict = _reliability_policy(threshold=0.99).route(_rows([2, 0]), 2, draw=0.9)[0]
    assert strict["decision"] == NEEDS_REVIEW and not any(r["selected"] for r in _rows([2, 0]))
    assert strict["routing"]["why"].startswith("below the certified threshold")
    audited = policy.route(_rows([2, 0]), 2, draw=0.01)[0]  # accepted, and drawn for audit
    assert audited["decision"] == ACCEPTED and audited["routing"]["audited"] and audited["routing"]["why"] == "audit"
    gated = policy.route(_rows([1, 1], gated=(0, 1, 2, 3)), 2, draw=0.01)[0]
    assert gated["decision"] == DISCARDED and not gated["routing"]["audited"] and gated["decision_source"] == "judges"


def test_the_agreement_rule_keeps_the_papers_decision_and_audits_some_accepted_sets():
    policy = RoutingPolicy(AGREEMENT, AGREEMENT, 0.05, "paper")
    agreed = policy.route(_rows([1, 1]), 1, draw=0.5)
    assert agreed[0]["decision"] == ACCEPTED and agreed[0]["decision_source"] == "judges"
    assert agreed[0]["routing"]["winner"] == 1 and agreed[0]["routing"]["probability"] is None  # no people yet
    assert not agreed[0]["routing"]["audited"] and [r["selected"] for r in agreed] == [False, True, False, False]
    audited = policy.route(_rows([1, 1]), 1, draw=0.04)[0]
    assert audited["decision"] == ACCEPTED and audited["routing"]["audited"] and "audited" in audited["decision_reason"]
    split = policy.route(_rows([1, 2]), 1, draw=0.04)[0]
    assert split["decision"] == NEEDS_REVIEW and split["routing"]["audited"]  # people see it anyway
    assert split["routing"]["why"] == "judges disagree (...)"
    assert RoutingPolicy.from_dict(_reliability_policy(0.8).to_dict()) == _reliability_policy(0.8)


def test_the_queue_puts_audits_first_then_what_teaches_most():
    model = fit(decided_history(SCENARIO, 3000, 0.05, seed=9))

    def record(picks, criterion, audit=False):
        return {"set_id": f"r/{picks}{criterion}{audit}", "iteration": 1, "criterion": criterion, "audit": audit,
                "passing": [0, 1, 2, 3], "winner": picks[0], "reason": "judges disagree",
                "judges": [{"judge": j, "ranking": [p] + [c for c in range(4) if c != p], "abstained": False,
                            "confidence": 0.9} for j, p in zip(("llava-onevision", "qwen2-vl"), picks, strict=True)]}

    audit = record([1, 1], "visual_clarity", audit=True)
    settled = record([2, 0], "visual_clarity")  # the reliable judge decides it
    unknown = record([2, 0], "narrative_coherence")  # nobody has reviewed this criterion yet
    doubtful = record([2, 0], "aesthetic_quality")  # judges near chance, measured
    ranks = {name: priority(r, model) for name, r in
             (("audit", audit), ("settled", settled), ("unknown", unknown), ("doubtful", doubtful))}
    assert ranks["audit"] == AUDIT_FIRST
    assert ranks["unknown"] > ranks["doubtful"] > ranks["settled"] >= 0, ranks
    assert priority(unknown, None) > 0  # before any model: all alike, none lost
    assert why(audit).startswith("Audit: the judges accepted candidate_1")
    below = record([2, 0], "visual_clarity") | {"why": "below the certified threshold: ...", "probability": 0.6}
    assert "60% chance" in why(below) and why(settled) == "Judges disagree."


def test_precision_per_iteration_from_audits_with_an_interval():
    sets = decided_history(SCENARIO, 3000, 0.1, seed=10)
    sets += [SetEvidence(**{**s.__dict__, "iteration": 2}) for s in decided_history(SCENARIO, 200, 0.05, seed=11)]
    sets += [SetEvidence(**{**s.__dict__, "iteration": 3}) for s in decided_history(SCENARIO, 100, 0.0, seed=12)]
    model = fit(sets)
    rows = {r["iteration"]: r for r in routing_table(sets, model)}
    big, small, none = rows["1"], rows["2"], rows["3"]
    assert big["method"] == "PPI++" and big["audited_decided"] >= 30 and big["rule"] == "agreement"
    assert big["low"] < big["precision"] < big["high"] and big["high"] - big["low"] < 0.2
    truth = [s for s in sets if s.iteration == 1 and s.audited and s.decided and s.routing["decision"] == ACCEPTED]
    assert big["low"] - 0.05 < sum(s.people == s.routing["winner"] for s in truth) / len(truth) < big["high"] + 0.05
    assert small["method"] == "audited (Wilson)" and 0 < small["audited_decided"] < 30
    assert none["method"] == "not measured" and none["precision"] is None
    assert big["review_load"] == pytest.approx(big["to_people"] / big["sets"], abs=1e-3) and rows["all"]["sets"] == 3300


def test_the_round_id_ignores_the_routing_settings(tiny_config_file):
    plain = load_config(tiny_config_file)
    routed = load_config(tiny_config_file, {"review.routing": "reliability", "review.audit_share": "0.2"})
    assert routed.review.routing == RELIABILITY and plain.round_id == routed.round_id
    with pytest.raises(ValueError, match="review.target_precision"):
        load_config(tiny_config_file, {"review.target_precision": "1.5"})


def test_ppi_interval_is_ppi_pythons():
    # reference: ppi-python 0.2.3's ppi_mean_ci(y, f, rest, alpha=0.05) on these inputs, run in a virtualenv of its
    # own (the package is not a dependency: it installs a top-level `tests` package over ours)
    import numpy as np

    from mora.review.precision import ppi_mean

    rng = np.random.default_rng(0)
    for n, big, low, high in ((40, 500, 0.408016, 0.674277), (200, 3000, 0.437615, 0.555727)):
        f = rng.random(n)
        y = (rng.random(n) < f).astype(float)
        estimate, half = ppi_mean(list(zip(y, f, strict=True)), list(rng.random(big)))
        assert (estimate - half, estimate + half) == pytest.approx((low, high), abs=1e-6)


def test_ppi_interval_covers_the_truth_and_is_narrower_only_when_predictions_inform():
    # accepted sets of two kinds (people agree with 97% or 30% of them); the model predicts each set's agreement
    # with a little noise, or not at all. Either way the 95% interval covers the true precision about 95% of the
    # time; informative predictions narrow it against the audited sets' own Wilson interval, useless ones cost nothing
    import numpy as np

    from mora.datasets.agreement import wilson
    from mora.review.precision import ppi_mean

    rng, truth, n, big, draws = np.random.default_rng(0), 0.8 * 0.97 + 0.2 * 0.3, 300, 3000, 1000
    for informative, narrower in ((True, 0.8), (False, 1.02)):
        covered, ppi_width, wilson_width = 0, 0.0, 0.0
        for _ in range(draws):
            p = np.where(rng.random(n + big) < 0.8, 0.97, 0.3)
            f = np.clip(p + rng.normal(0, 0.05, n + big), 0, 1) if informative else rng.random(n + big)
            y = (rng.random(n) < p[:n]).astype(float)
            estimate, half = ppi_mean(list(zip(y, f[:n], strict=True)), list(f[n:]))
            covered += estimate - half <= truth <= estimate + half
            low, high = wilson(int(y.sum()), n)
            ppi_width, wilson_width = ppi_width + 2 * half, wilson_width + high - low
        assert covered / draws >= 0.92, (informative, covered)
        assert ppi_width / wilson_width <= narrower, (informative, ppi_width / wilson_width)
