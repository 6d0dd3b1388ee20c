"""The data products (card, preference pairs, judges against people, iteration report, tar export) on
shards from real tiny rounds: iteration 1's disagreements decided by a person through the real Label
Studio (one chosen, one rejected, the rest left pending), iteration 2's accepted by two judges that
agree. Expected numbers are counted from the shards by hand (pandas), not hard-coded."""

import io
import json
import shutil
import tarfile
from pathlib import Path

import pandas as pd
import pyarrow.dataset as ds
import pytest
from typer.testing import CliRunner

from mora.cli import app
from mora.config import load_config
from mora.datasets.agreement import agreement_table, outcomes, wilson
from mora.datasets.export import export_webdataset
from mora.datasets.facts import dataset_facts
from mora.datasets.pairs import set_pairs
from mora.datasets.schema import SCHEMA_VERSION
from mora.datasets.sets import CandidateSetRows
from mora.datasets.shards import data_dir, dataset_dir
from mora.flows.review import collect_reviews
from mora.flows.round import dataset_round
from mora.review import server
from mora.review.pending import records
from mora.review.push import client_for, push
from mora.training.pairs import PreferencePairDataset
from tests.conftest import EVERY_SET_REVIEWED, start_label_studio, write_tiny_config

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[1]
ARTIFACTS = REPO / ".mora" / "test-artifacts"


def _annotate(client, task_id, choice, reason=None):
    result = [{"from_name": "choice", "to_name": "video_0", "type": "choices", "value": {"choices": [choice]}}]
    if reason:
        result.append({"from_name": "reason", "to_name": "video_0", "type": "textarea", "value": {"text": [reason]}})
    client.annotations.create(id=task_id, result=result, lead_time=5.0)


@pytest.fixture(scope="module")
def decided(tmp_path_factory, tiny_models):
    config = write_tiny_config(tiny_models, tmp_path_factory.mktemp("products"))
    first = {"prompts.count": "4", "generation.num_frames": "9"} | EVERY_SET_REVIEWED
    dataset_round(str(config), first)
    cfg = load_config(config, first)
    root, dataset = cfg.shards.root, cfg.shards.dataset
    conn = start_label_studio(root, tmp_path_factory)
    try:
        push(conn, root, dataset)
        chosen, rejected, *waiting = records(root, dataset)  # the judges disagree on random weights
        client = client_for(conn)
        _annotate(client, chosen["task_id"], "candidate_2", "the sharpest")
        _annotate(client, rejected["task_id"], "reject_all", "all noise")
        collect_reviews(str(root), dataset)  # the Prefect flow: collects, then rewrites card and report
    finally:
        server.down(root)
    # both judges on one model: they always agree, so iteration 2's sets are accepted by the judges
    agree = {"iteration": "2", "prompts.count": "2", "judges.1.family": "llava-onevision",
             "judges.1.model.id": cfg.judges[0].model.id}
    dataset_round(str(config), first | agree)
    return {"root": root, "dataset": dataset, "chosen": chosen["set_id"], "rejected": rejected["set_id"],
            "waiting": [w["set_id"] for w in waiting], "rows": pd.read_parquet(data_dir(root, dataset))}


def _count_line(rows, iteration):
    """The card's counts row of one iteration, counted from the rows."""
    sets = rows[rows.iteration == iteration].groupby("set_id").first()
    human = sets.decision_source == "human"
    cells = [iteration, sets.round_id.nunique(), len(sets), int((rows.iteration == iteration).sum()),
             int(((sets.decision == "accepted") & ~human).sum()), int(((sets.decision == "accepted") & human).sum()),
             int(((sets.decision == "discarded") & ~human).sum()), int(((sets.decision == "discarded") & human).sum()),
             int((sets.decision == "needs_review").sum()), int(rows[rows.iteration == iteration].selected.sum())]
    return "| " + " | ".join(map(str, cells)) + " |"


def test_the_card_parses_and_load_dataset_loads_a_named_iteration(decided, tmp_path):
    """``datasets`` caches what it loaded under ~/.cache, shared by every test run on the machine: a fresh clone
    run beside others once got another run's iteration 2 back (its round id), so this test caches its own."""
    import datasets
    from huggingface_hub import DatasetCard

    root, dataset, rows = decided["root"], decided["dataset"], decided["rows"]
    card = DatasetCard.load(dataset_dir(root, dataset) / "README.md")
    names = [c["config_name"] for c in card.data.configs]
    assert names == ["all", "iteration_1", "iteration_2"]
    two = datasets.load_dataset(str(dataset_dir(root, dataset)), "iteration_2", split="train",
                                cache_dir=str(tmp_path / "hf"))
    assert two.num_rows == (rows.iteration == 2).sum() > 0
    assert set(two["round_id"]) == set(rows[rows.iteration == 2].round_id)
    one = datasets.load_dataset(str(dataset_dir(root, dataset)), "iteration_1", split="train",
                                cache_dir=str(tmp_path / "hf"))
    assert one.num_rows == (rows.iteration == 1).sum()
    assert {decided["chosen"], decided["rejected"], *decided["waiting"]} <= set(one["set_id"])
    assert one.to_pandas().groupby("set_id").decision_source.first()[decided["chosen"]] == "human"  # not a stale cache
    # the documented readers still read the data folder, with the card beside it
    assert len(ds.dataset(data_dir(root, dataset), format="parquet", partitioning="hive").to_table()) == len(rows)
    # per-iteration counts: sets, candidates, by judges / people, discarded, pending, selected
    assert _count_line(rows, 1) in card.text and _count_line(rows, 2) in card.text
    by_people = rows[rows.decision_source == "human"].groupby("set_id").decision.first()
    assert by_people.to_dict() == {decided["chosen"]: "accepted", decided["rejected"]: "discarded"}
    assert "## Checkpoint lineage" in card.text and "base models" in card.text
    assert f"Schema (version {SCHEMA_VERSION})" in card.text
    assert str(Path(rows.generator_models.iloc[0][0]["model_id"])) in card.text
    assert "| llava-onevision | all | all | " in card.text  # judges checked against people


def _video(rows, set_id, candidate):
    return rows[(rows.set_id == set_id) & (rows.candidate_index == candidate)].video.iloc[0]


def test_pairs_have_the_right_count_and_the_chosen_and_rejected_bytes(decided, tmp_path):
    root, dataset, rows = decided["root"], decided["dataset"], decided["rows"]
    out = tmp_path / "pairs.parquet"
    result = CliRunner().invoke(app, ["dataset", "pairs", str(root), "--dataset", dataset, "--out", str(out)])
    assert result.exit_code == 0, result.output
    pairs = pd.read_parquet(out)
    expected = 0
    for set_id, cands in rows[rows.decision == "accepted"].groupby("set_id"):
        winner = int(cands[cands.selected].candidate_index.iloc[0])
        losers = [int(c.candidate_index) for c in cands.itertuples() if len(c.gate_failures) == 0
                  and c.candidate_index != winner]
        got = pairs[pairs.set_id == set_id]
        assert sorted(got.rejected_index) == losers and got.chosen_index.eq(winner).all()
        assert got.weight.sum() == pytest.approx(1.0)
        for pair in got.itertuples():  # bytes exactly as in the shards
            assert pair.chosen_video == _video(rows, set_id, winner)
            assert pair.rejected_video == _video(rows, set_id, pair.rejected_index)
        expected += len(losers)
    assert len(pairs) == expected > 0
    human = pairs[pairs.set_id == decided["chosen"]]
    assert human.decision_source.eq("human").all() and human.chosen_index.eq(2).all()
    full = rows[rows.set_id == decided["chosen"]]
    if full.gate_failures.map(len).eq(0).all():  # a winner and 3 passing losers: 3 pairs
        assert len(human) == 3
    assert not pairs.set_id.isin([decided["rejected"], *decided["waiting"]]).any()
    assert pairs[pairs.iteration == 2].decision_source.eq("judges").all()

    only_2 = tmp_path / "two.parquet"
    CliRunner().invoke(app, ["dataset", "pairs", str(root), "--dataset", dataset, "--iteration", "2",
                             "--out", str(only_2)])
    assert len(pd.read_parquet(only_2)) == (pairs.iteration == 2).sum()

    agreed = tmp_path / "consensus.parquet"
    result = CliRunner().invoke(app, ["dataset", "pairs", str(root), "--dataset", dataset, "--order", "consensus",
                                      "--out", str(agreed)])
    assert result.exit_code == 0, result.output
    consensus = pd.read_parquet(agreed)  # the winner pairs, and more where the judges agreed beyond their winner
    assert set(pairs.pair_id) <= set(consensus.pair_id) and len(consensus) >= len(pairs)
    assert consensus.groupby("set_id").weight.sum().round(9).eq(1.0).all()

    dpo = tmp_path / "dpo" / "pairs.json"
    result = CliRunner().invoke(app, ["dataset", "pairs", str(root), "--dataset", dataset, "--out", str(dpo),
                                      "--format", "videodpo"])
    assert result.exit_code == 0, result.output
    items = json.loads(dpo.read_text())
    assert len(items) == len(pairs)
    by_id = pairs.set_index("pair_id")
    for item in items:
        assert (dpo.parent / item["chosen"]).read_bytes() == by_id.loc[item["pair_id"], "chosen_video"]
        assert (dpo.parent / item["rejected"]).read_bytes() == by_id.loc[item["pair_id"], "rejected_video"]
    assert len(list((dpo.parent / "videos").glob("*.mp4"))) == len({i["chosen"] for i in items} |
                                                                     {i["rejected"] for i in items})

    torch_pairs = PreferencePairDataset(out, num_frames=5)
    examples = list(torch_pairs)
    assert len(examples) == len(torch_pairs) == len(pairs)
    assert examples[0]["chosen"].shape == examples[0]["rejected"].shape == (5, 3, 64, 64)
    assert -1.0 <= float(examples[0]["chosen"].min()) and float(examples[0]["chosen"].max()) <= 1.0
    assert len(PreferencePairDataset(out, sources=("human",))) == len(human)


def test_judges_against_people_on_the_round_shards(decided):
    root, dataset, rows = decided["root"], decided["dataset"], decided["rows"]
    table = {(r["judge"], r["by"], r["value"]): r for r in dataset_facts(root, dataset).agreement}

    def first(set_id):
        return rows[rows.set_id == set_id].iloc[0]

    passing = [int(c) for c in rows[(rows.set_id == decided["chosen"]) & rows.gate_failures.map(len).eq(0)]
               .candidate_index]
    for judge, on_rejected in zip(first(decided["chosen"]).judges, first(decided["rejected"]).judges, strict=True):
        got = table[(judge["judge"], "all", "all")]
        pick = None if judge["abstained"] else next(c for c in judge["ranking"] if c in passing)
        assert got["sets"] == (pick is not None) and got["matches"] == (pick == 2)
        assert got["rejected_all"] == (not on_rejected["abstained"])
        assert table[(judge["judge"], "iteration", "1")]["sets"] == got["sets"]
        assert (judge["judge"], "iteration", "2") not in table  # the judges decided iteration 2 themselves
    result = CliRunner().invoke(app, ["dataset", "judges", str(root), "--dataset", dataset], env={"COLUMNS": "200"})
    assert result.exit_code == 0 and "llava-onevision" in result.output and "qwen2-vl" in result.output


def test_the_judge_table_matches_a_hand_count():
    def made(set_id, iteration, criterion, choice, picks, failures=()):
        judges = [{"judge": name, "ranking": [] if pick is None else [pick] + [c for c in range(4) if c != pick],
                   "abstained": pick is None} for name, pick in picks.items()]
        rows = [{"set_id": set_id, "candidate_index": c, "criterion": criterion, "judges": judges,
                 "decision_source": "human" if choice else "judges", "selected": False,
                 "gate_failures": ["motion"] if c in failures else [],
                 "review": {"choice": choice} if choice else None} for c in range(4)]
        return CandidateSetRows(iteration, rows)

    sets = [made("a", 1, "realism", "candidate_0", {"qwen": 0, "llava": 1}),
            made("b", 1, "realism", "candidate_2", {"qwen": 2, "llava": 2}),
            made("c", 1, "aesthetics", "candidate_3", {"qwen": 1, "llava": None}),
            made("d", 2, "aesthetics", "reject_all", {"qwen": 0, "llava": 0}),
            made("e", 2, "realism", "candidate_1", {"qwen": 0, "llava": 1}, failures=(0,)),  # qwen's pick: 1
            made("f", 2, "realism", None, {"qwen": 0, "llava": 0})]  # the judges decided: not counted
    table = {(r["judge"], r["by"], r["value"]): r for r in agreement_table(outcomes(sets))}
    qwen = table[("qwen", "all", "all")]
    assert (qwen["matches"], qwen["sets"], qwen["rejected_all"], qwen["abstained"]) == (3, 4, 1, 0)
    assert (qwen["low"], qwen["high"]) == (0.3006, 0.9544)  # Wilson 95% for 3 of 4
    llava = table[("llava", "all", "all")]
    assert (llava["matches"], llava["sets"], llava["abstained"]) == (2, 3, 1)
    assert table[("qwen", "criterion", "aesthetics")]["sets"] == 1
    assert table[("qwen", "iteration", "2")]["matches"] == 1 and table[("qwen", "iteration", "2")]["rejected_all"] == 1
    assert table[("llava", "criterion", "realism")]["matches"] == 2
    assert wilson(0, 0) == (None, None) and wilson(5, 5)[1] == 1.0


def test_the_iteration_report_renders_in_chromium_with_every_image(decided):
    from playwright.sync_api import sync_playwright

    root, dataset = decided["root"], decided["dataset"]
    index = Path(root) / "_reports" / dataset / "index.html"
    sheets = sorted(index.parent.glob("iteration=*/*contact-sheet*.png"))
    assert len(sheets) >= 2  # one per round at least
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=shutil.which("chromium") or "/usr/bin/chromium", args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--no-first-run"])
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(index.as_uri())
        page.wait_for_load_state("load")
        images = page.eval_on_selector_all("img", "els => els.map(e => [e.getAttribute('src'), e.complete, "
                                                  "e.naturalWidth])")
        text = page.locator("body").inner_text()
        page.screenshot(path=str(ARTIFACTS / "iteration-report.png"), full_page=True)
        browser.close()
    assert len(images) == len(sheets) + 1  # every contact sheet and the trend figure
    broken = [src for src, complete, width in images if not complete or width == 0]
    assert not broken, broken
    assert "Judges checked against people" in text and "llava-onevision" in text and "accepted_by_people" in text


def test_the_tar_export_reads_back_and_matches_the_shard_rows(decided, tmp_path):
    root, dataset, rows = decided["root"], decided["dataset"], decided["rows"]
    paths = export_webdataset(root, dataset, tmp_path / "all", choose="all", max_samples=6)
    assert [p.name for p in paths] == [f"{dataset}-{i:06d}.tar" for i in range(-(-len(rows) // 6))]  # 6 per tar
    seen = {}
    for path in paths:
        with tarfile.open(path) as tar:
            members = tar.getmembers()
            assert len(members) % 2 == 0 and len(members) <= 12
            for m in members:
                seen[m.name] = tar.extractfile(m).read()
    keys = {name.rsplit(".", 1)[0] for name in seen}
    assert len(keys) == len(rows) and all("." not in k for k in keys)
    for row in rows.itertuples():
        key = f"{row.set_id.replace('/', '__')}__c{row.candidate_index}"
        assert seen[f"{key}.mp4"] == row.video
        meta = json.loads(seen[f"{key}.json"])
        assert (meta["set_id"], meta["candidate_index"], meta["selected"]) == (row.set_id, row.candidate_index,
                                                                              bool(row.selected))
        assert meta["iteration"] == int(row.iteration) and "video" not in meta

    result = CliRunner().invoke(app, ["dataset", "export", str(root), "--dataset", dataset, "--out",
                                      str(tmp_path / "winners")])
    assert result.exit_code == 0, result.output
    with tarfile.open(tmp_path / "winners" / f"{dataset}-000000.tar") as tar:
        names = tar.getnames()
    assert len(names) == 2 * int(rows.selected.sum())
    with tarfile.open(fileobj=io.BytesIO((tmp_path / "winners" / f"{dataset}-000000.tar").read_bytes())) as tar:
        assert all(json.loads(tar.extractfile(n).read())["selected"] for n in names if n.endswith(".json"))


def test_bad_input_is_one_line(decided, tmp_path):
    root, dataset = decided["root"], decided["dataset"]
    runner = CliRunner()
    for args in (["dataset", "pairs", str(root), "--dataset", "nope", "--out", str(tmp_path / "p.parquet")],
                 ["dataset", "pairs", str(root), "--dataset", dataset, "--iteration", "9", "--out",
                  str(tmp_path / "p.parquet")],
                 ["dataset", "pairs", str(root), "--dataset", dataset, "--order", "best", "--out",
                  str(tmp_path / "p.parquet")],
                 ["dataset", "export", str(root), "--dataset", dataset, "--choose", "best", "--out", str(tmp_path)],
                 ["dataset", "judges", str(tmp_path / "missing"), "--dataset", dataset]):
        result = runner.invoke(app, args, env={"COLUMNS": "300"})
        assert result.exit_code == 2 and result.output.count("\n") == 1 and "error:" in result.output, result.output


def test_pairs_follow_a_reviewers_full_order_when_there_is_one():
    def made(review, decision="accepted", winner=2, failures=()):
        return CandidateSetRows(1, [{"set_id": "s", "candidate_index": c, "decision": decision, "selected": c == winner,
                                     "gate_failures": ["flicker"] if c in failures else [], "review": review}
                                    for c in range(4)])

    assert set_pairs(made(None)) == ([(2, 0), (2, 1), (2, 3)], "winner")  # a winner, 3 passing losers: 3 pairs
    assert set_pairs(made(None, failures=(0,))) == ([(2, 1), (2, 3)], "winner")  # a gated loser is no pair
    ranked = made({"choice": "candidate_2", "ranking": ["candidate_2", "candidate_0", "candidate_3", "candidate_1"]})
    assert set_pairs(ranked) == ([(2, 0), (2, 3), (2, 1), (0, 3), (0, 1), (3, 1)], "reviewer_ranking")
    assert set_pairs(made(None, decision="discarded", winner=None)) == ([], "")
    # consensus: also every order of the others that all judges who ranked give (an abstention does not count)
    judged = made(None)
    judges = [{"ranking": [2, 0, 1, 3], "abstained": False}, {"ranking": [2, 1, 0, 3], "abstained": False},
              {"ranking": [], "abstained": True}]
    judged.rows[0]["judges"] = judges
    assert set_pairs(judged, "consensus") == ([(2, 0), (2, 1), (2, 3), (0, 3), (1, 3)], "judges_consensus")
    assert set_pairs(judged, "winner") == ([(2, 0), (2, 1), (2, 3)], "winner")
    assert set_pairs(ranked, "consensus")[1] == "reviewer_ranking"  # a reviewer's full order comes first
    with pytest.raises(ValueError, match="pair order 'best' is unknown"):
        set_pairs(judged, "best")
