"""The real Prefect flow on the tiny models, read back from the shards it wrote."""

from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pyarrow.dataset as ds
import pytest
from prefect.client.orchestration import get_client

from mora.config import load_config
from mora.datasets.shards import data_dir
from mora.flows.round import dataset_round
from mora.media import decode
from mora.review.pending import pending_counts, reviews_dir
from mora.round import steps
from mora.round.state import RoundState

pytestmark = pytest.mark.slow


def _shard_files(root: Path) -> list[Path]:
    return sorted(root.rglob("part-*.parquet"))


def test_round_with_agreeing_judges_accepts_and_writes_readable_shards(tiny_config_file):
    # Both judges on one model: they always agree, so every set is accepted with one winner.
    overrides = {"prompts.count": "3", "judges.1.model.id": load_config(tiny_config_file).judges[0].model.id,
                 "judges.1.family": "llava-onevision", "generation.num_frames": "9"}
    summary = dataset_round(str(tiny_config_file), overrides)
    cfg = load_config(tiny_config_file, overrides)
    assert summary["prompts"] == 3 and summary["candidates"] == 12 and summary["accepted"] == 3
    assert summary["judge_agreement"] == 1.0 and summary["pending_reviews"] == 0
    from PIL import Image

    (page,) = summary["contact_sheets"]  # 3 sets, one row each: a single page
    with Image.open(page) as sheet:
        assert sheet.width > 4 * 3 * 64 and sheet.height > 3 * 96

    df = pd.read_parquet(data_dir(cfg.shards.root, cfg.shards.dataset))
    assert len(df) == 12 and set(df.iteration.astype(int)) == {1}
    assert df.groupby("set_id").selected.sum().tolist() == [1, 1, 1]
    assert df.seed.nunique() == 12 and (df.decision == "accepted").all()
    winners = df[df.selected]
    for _, row in winners.iterrows():
        assert row.candidate_index == row.judges[0]["ranking"][0] == row.judges[1]["ranking"][0]
    for video in df.video:
        frames, fps = decode(video)
        assert frames.shape == (9, 64, 64, 3) and fps == pytest.approx(8)
    assert (df.num_frames == 9).all() and (df.width == 64).all() and (df.height == 64).all()
    assert set(df.criterion_seed) and df.judges.map(len).eq(2).all()
    table = ds.dataset(data_dir(cfg.shards.root, cfg.shards.dataset), format="parquet", partitioning="hive").to_table()
    assert table.num_rows == 12


def test_default_round_sends_disagreements_to_review_and_reruns_write_nothing(tiny_config_file):
    overrides = {"prompts.count": "4", "generation.num_frames": "9"}
    cfg = load_config(tiny_config_file, overrides)
    first = dataset_round(str(tiny_config_file), overrides)
    assert first["accepted"] + first["needs_review"] + first["discarded"] == 4
    pending = list(reviews_dir(cfg.shards.root, cfg.shards.dataset).glob("*.json"))
    assert len(pending) == first["needs_review"] == first["pending_reviews"]
    assert pending_counts(cfg.shards.root) == ({("tiny", 1): len(pending)} if pending else {})

    files = {p: p.stat().st_mtime_ns for p in _shard_files(Path(cfg.shards.root))}
    second = dataset_round(str(tiny_config_file), overrides)
    assert second == first
    assert {p: p.stat().st_mtime_ns for p in _shard_files(Path(cfg.shards.root))} == files
    assert len(pd.read_parquet(data_dir(cfg.shards.root, "tiny"))) == 16


def test_a_crashed_round_resumes_from_its_finished_sets(tiny_config_file):
    # Simulate a crash after one set: plan and stage it with the plain steps, as the flow would.
    overrides = {"prompts.count": "3", "generation.num_frames": "9"}
    cfg = load_config(tiny_config_file, overrides)
    state = RoundState(cfg)
    agents = steps.RoundAgents.load(cfg)
    planned = steps.plan_prompts(cfg, agents.prompt)
    state.save_prompts(planned)
    staged = steps.make_set(cfg, agents, planned[0], datetime.now(UTC))
    state.save_set(planned[0].set_id, staged)

    summary = dataset_round(str(tiny_config_file), overrides)
    assert summary["prompts"] == 3
    df = pd.read_parquet(data_dir(cfg.shards.root, "tiny"))
    first = df[df.prompt_index == 0].sort_values("candidate_index")
    assert list(first.created_at) == [r["created_at"] for r in staged]  # reused, not regenerated
    assert len(df) == 12 and df.groupby("set_id").size().eq(4).all()


async def _artifact_keys() -> set[str]:
    async with get_client() as client:
        return {a.key for a in await client.read_artifacts()}


def test_flow_records_its_summary_as_prefect_artifacts(tiny_config_file):
    import asyncio

    dataset_round(str(tiny_config_file), {"prompts.count": "2", "generation.num_frames": "9"})
    assert {"round-summary", "round-counts"} <= asyncio.run(_artifact_keys())


def test_sets_whose_candidates_all_fail_the_gates_are_discarded(tiny_config_file):
    overrides = {"prompts.count": "2", "generation.num_frames": "9", "gates.min_motion": "1000"}
    summary = dataset_round(str(tiny_config_file), overrides)
    assert summary["discarded"] == 2 and summary["pending_reviews"] == 0
    cfg = load_config(tiny_config_file, overrides)
    df = pd.read_parquet(data_dir(cfg.shards.root, "tiny"))
    assert (df.decision == "discarded").all() and not df.selected.any()
    assert df.gate_failures.map(lambda f: f[0].startswith("static")).all()
    assert (pd.json_normalize(df.gate_metrics).motion > 0).all()


def test_a_round_that_stopped_before_publishing_publishes_when_run_again(tiny_config_file, monkeypatch):
    """A crash between complete.json and the dataset card (here: publishing raises) left the card and
    report missing until the next round; running the finished round again writes them."""
    import mora.flows.round as round_flow
    from mora.reports.publish import products

    overrides = {"prompts.count": "2", "generation.num_frames": "9"}
    cfg = load_config(tiny_config_file, overrides)

    def killed(root, dataset):
        raise RuntimeError("killed between complete.json and the dataset card")

    monkeypatch.setattr(round_flow, "publish_dataset", killed)
    with pytest.raises(RuntimeError, match="killed between"):
        dataset_round(str(tiny_config_file), overrides)
    monkeypatch.undo()
    card, report = products(cfg.shards.root, cfg.shards.dataset)
    assert RoundState(cfg).complete and not card.exists() and not report.exists()
    shards = {p: p.stat().st_mtime_ns for p in _shard_files(Path(cfg.shards.root))}
    summary = dataset_round(str(tiny_config_file), overrides)
    assert summary["prompts"] == 2 and card.is_file() and report.is_file()
    assert "iteration_1" in card.read_text()
    assert {p: p.stat().st_mtime_ns for p in _shard_files(Path(cfg.shards.root))} == shards  # nothing made again
    before = card.stat().st_mtime_ns
    dataset_round(str(tiny_config_file), overrides)
    assert card.stat().st_mtime_ns == before  # published once: a third run leaves it
