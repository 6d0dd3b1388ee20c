"""Review routing in real rounds on the tiny models (real Prefect flow, real shards read back).

The tiny judges have random weights: with no human decision on record nothing can be certified, and a round
that asks for ``reliability`` routes by the paper's rule and says why. With a decided history on record
(simulated judges and people of known reliability, written as iteration 1's shards) the same round routes
its sets by the certified threshold.
"""

import json
import random
import re

import pandas as pd
import pytest

from mora.config import load_config
from mora.datasets.schema import SCHEMA_VERSION
from mora.datasets.shards import data_dir, write_shards
from mora.flows.round import dataset_round
from mora.judges.criteria import CRITERIA
from mora.judges.verdict import ACCEPTED, NEEDS_REVIEW
from mora.reports.html import reports_dir
from mora.review.pending import reviews_dir
from mora.review.precision import COLUMNS as ROUTING_COLUMNS
from mora.review.routing import AGREEMENT, RELIABILITY, RoutingPolicy
from mora.review.simulation import Scenario, people_decide, simulate_set
from mora.round.state import RoundState

pytestmark = pytest.mark.slow

GATES = {"motion": 1.0, "flicker": 0.0, "dark_fraction": 0.0, "bright_fraction": 0.0, "sharpness": 50.0}
ROUND = {"prompts.count": "4", "generation.num_frames": "9", "review.routing": "reliability"}


def _by_set(cfg) -> pd.DataFrame:
    df = pd.read_parquet(data_dir(cfg.shards.root, cfg.shards.dataset))
    return df[df.iteration.astype(int) == cfg.iteration].groupby("set_id").first()


def test_reliability_routing_on_random_judges_falls_back_to_agreement_and_says_so(tiny_config_file):
    overrides = ROUND | {"review.audit_share": "0.5"}
    summary = dataset_round(str(tiny_config_file), overrides)
    cfg = load_config(tiny_config_file, overrides)
    assert summary["routing"].startswith("agreement (reliability requested, nothing certified: 0 audited human")
    assert summary["accepted_by_reliability"] == 0
    sets = _by_set(cfg)
    assert sets.routing.map(lambda r: r["rule"]).eq(AGREEMENT).all()
    assert sets.decision_source.eq("judges").all() and (sets.schema_version == SCHEMA_VERSION).all()
    audited = sets[sets.routing.map(lambda r: r["audited"]) & sets.decision.eq(ACCEPTED)]
    assert summary["audited"] == len(audited) and summary["pending_reviews"] == summary["needs_review"] + len(audited)
    records = {json.loads(p.read_text())["set_id"]: json.loads(p.read_text())
               for p in reviews_dir(cfg.shards.root, cfg.shards.dataset).glob("*.json")}
    assert set(records) == set(sets.index[sets.decision.eq(NEEDS_REVIEW)]) | set(audited.index)
    assert all(records[s]["audit"] and records[s]["why"] == "audit" for s in audited.index)
    assert summary["review_load"] == pytest.approx(summary["pending_reviews"] / 4, abs=1e-3)
    card = (data_dir(cfg.shards.root, cfg.shards.dataset).parent / "README.md").read_text()
    assert "## Review routing and precision" in card and "| 1 | agreement | 4 |" in card
    frozen = RoutingPolicy.from_dict(json.loads((RoundState(cfg).dir / "routing.json").read_text()))
    assert frozen.rule == AGREEMENT and frozen.requested == RELIABILITY
    assert dataset_round(str(tiny_config_file), overrides) == summary  # finished: nothing routed again


def _history(cfg, sets: int = 3000, audit_share: float = 0.1) -> None:
    """Iteration 1 as shards: simulated judges named as the preset's, reliable on every criterion, people deciding
    what the paper's rule sends them and the audited sets."""
    scenario = Scenario("history", {c.key: (0.95, 0.9) for c in CRITERIA})
    paper, rng, rows = RoutingPolicy(AGREEMENT, AGREEMENT, audit_share, ""), random.Random(0), []
    round_id = f"{cfg.shards.dataset}-it001-0123456789"
    for i in range(sets):
        s = simulate_set(scenario, f"{round_id}/p{i:05d}", rng)
        routed = paper.route(s.rows, 1, draw=rng.random())
        if routed[0]["routing"]["decision"] != ACCEPTED or routed[0]["routing"]["audited"]:
            routed = people_decide(routed, s.people, s.reviewer)
        prompt = f"history prompt number {i}"
        rows += [r | {"schema_version": SCHEMA_VERSION, "round_id": round_id, "prompt_index": i, "prompt": prompt,
                      "enhanced_prompt": prompt, "seed": i, "video": b"", "num_frames": 9, "fps": 8.0, "width": 64,
                      "height": 64, "generator_models": [], "gate_metrics": GATES} for r in routed]
    write_shards(rows, cfg.shards.root, cfg.shards.dataset, 1, round_id, max_rows=4 * sets)


def test_a_round_after_enough_audited_decisions_routes_by_the_certified_threshold(tiny_config_file):
    overrides = ROUND | {"iteration": "2", "review.target_precision": "0.8", "review.audit_share": "0"}
    cfg = load_config(tiny_config_file, overrides)
    _history(cfg)
    summary = dataset_round(str(tiny_config_file), overrides)
    assert summary["routing"].startswith("reliability: threshold"), summary["routing"]
    policy = RoutingPolicy.from_dict(json.loads((RoundState(cfg).dir / "routing.json").read_text()))
    assert policy.rule == RELIABILITY and policy.certificate.lower >= 0.8 and policy.certificate.calibration >= 200
    sets = _by_set(cfg)
    for _, s in sets.iterrows():
        routing = s.routing
        assert routing["rule"] == RELIABILITY and routing["threshold"] == policy.threshold
        assert s.decision_source == "judges-reliability"
        assert (s.decision == ACCEPTED) == (routing["probability"] >= policy.threshold), routing
    assert summary["accepted_by_reliability"] == sets.decision.eq(ACCEPTED).sum()
    assert summary["needs_review"] == sets.decision.eq(NEEDS_REVIEW).sum() == summary["pending_reviews"]
    card = (data_dir(cfg.shards.root, cfg.shards.dataset).parent / "README.md").read_text()
    cells = [line.strip("| ").split(" | ") for line in card.splitlines() if line.startswith("| 1 | agreement | 3000 |")]
    report = (reports_dir(cfg.shards.root, cfg.shards.dataset) / "index.html").read_text()
    cells += [re.findall(r"<td[^>]*>(.*?)</td>", row) for row in re.findall(r"<tr>(.*?)</tr>", report)
              if re.match(r'<td class="l">1</td><td class="l">agreement</td><td[^>]*>3000<', row)]
    assert len(cells) == 2  # iteration 1 in the card and in the report: the paper's rule, measured by its audits
    for row in cells:
        shown = dict(zip(ROUTING_COLUMNS, row, strict=True))
        assert shown["method"] == "PPI++" and int(shown["audited_decided"]) >= 30
        assert float(shown["low"]) < float(shown["precision"]) < float(shown["high"]) <= 1
        assert float(shown["review_load"]) == pytest.approx(int(shown["to_people"]) / 3000, abs=1e-3)
        assert 0 < float(shown["review_load"]) < 1
    assert "| 2 | reliability | 4 |" in card and '<td class="l">2</td><td class="l">reliability</td>' in report
    assert "| llava-onevision | visual_clarity |" in card  # judges x criteria as the model measures them
