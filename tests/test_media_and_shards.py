"""Video encoding and the shard files: atomic, idempotent, readable by pandas, pyarrow and datasets."""

from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pyarrow.dataset as ds
import pytest

from mora.datasets.schema import SCHEMA, SCHEMA_VERSION
from mora.datasets.shards import inspect, write_shards
from mora.evaluation.properties import brightness
from mora.media import VideoError, decode, decode_frames, encode_mp4, pick_frames


def _frames(t=9, h=32, w=48):
    rng = np.random.default_rng(0)
    return rng.integers(0, 255, size=(t, h, w, 3), dtype=np.uint8)


def test_mp4_roundtrip_keeps_frames_size_and_fps():
    data = encode_mp4(_frames(), fps=8)
    frames, fps = decode(data)
    assert frames.shape == (9, 32, 48, 3) and fps == pytest.approx(8)
    assert [im.size for im in pick_frames(frames, 4)] == [(48, 32)] * 4
    smooth = np.full((5, 32, 32, 3), 120, np.uint8)
    assert np.abs(decode(encode_mp4(smooth, 8))[0].astype(int) - 120).max() <= 2


@pytest.mark.parametrize("level", [40, 100, 200])
def test_a_stored_video_reads_back_as_bright_as_it_was_made(level):
    """Self-training learns from the videos it stored: decoding 0.85 of a level darker (swscale's truncating
    YUV to RGB) darkened every arm of bench/loop_learns.py by that much per iteration, the control too."""
    rng = np.random.default_rng(level)
    ramp = np.linspace(level - 30, level + 30, 64)[None, None, :, None] + rng.normal(0, 3, (9, 64, 64, 3))
    frames = np.clip(ramp, 0, 255).astype(np.uint8)
    data = encode_mp4(frames, 8)
    assert abs(brightness(decode(data)[0]) - brightness(frames)) < 0.0005  # it was -0.0018
    picked = np.stack([np.asarray(im) for im in decode_frames(data, 9)])
    assert abs(brightness(picked) - brightness(frames)) < 0.0005


def test_float_frames_are_scaled_to_bytes():
    frames, _ = decode(encode_mp4(np.ones((3, 16, 16, 3), np.float32), fps=4))
    assert frames.min() > 240


@pytest.mark.parametrize("data, words", [(b"", "empty"), (b"not a video at all" * 10, "cannot be decoded")])
def test_bad_videos_raise_one_clear_error(data, words):
    with pytest.raises(VideoError, match=words):
        decode(data)


def _rows(n_sets=3, cands=4, round_id="r-it001-x"):
    video = encode_mp4(_frames(5, 16, 16), 8)
    now = datetime.now(UTC)
    rows = []
    for s in range(n_sets):
        for c in range(cands):
            rows.append(dict(
                schema_version=SCHEMA_VERSION, round_id=round_id, set_id=f"{round_id}/p{s:05d}", prompt_index=s,
                prompt=f"prompt {s}", prompt_source="synthesizer", enhanced_prompt=f"detailed prompt {s}",
                enhanced_by="none", procedure="text-to-video", candidate_index=c, seed=1000 * s + c, video=video,
                num_frames=5, fps=8.0, width=16, height=16,
                generator_models=[{"role": "text_to_image", "model_id": "m", "revision": None}],
                criterion="realism", criterion_seed=1,
                judges=[{"judge": "a", "model": "m", "ranking": [0, 1, 2, 3], "scores": [0.4, 0.3, 0.2, 0.1],
                         "confidence": 0.1, "per_order": [{"order": [0, 1, 2, 3], "ranking": [0, 1, 2, 3]}],
                         "abstained": False, "reason": None, "seconds": 0.1}],
                decision="accepted" if s == 0 else "needs_review", decision_source="judges", decision_reason="x",
                selected=s == 0 and c == 0, generation_seconds=0.1, created_at=now, round_started_at=now))
    return rows


def test_shards_are_hive_partitioned_and_readable_everywhere(tmp_path):
    import datasets

    write_shards(_rows(), tmp_path, "d", 1, "r-it001-x", max_rows=5)
    write_shards(_rows(2, round_id="r-it002-y"), tmp_path, "d", 2, "r-it002-y", max_rows=100)
    parts = sorted(p.name for p in (tmp_path / "d" / "data" / "iteration=1").iterdir())
    assert parts == [f"part-r-it001-x-0000{i}.parquet" for i in range(3)]  # 12 rows, 5 per part

    df = pd.read_parquet(tmp_path / "d" / "data")
    assert len(df) == 20 and sorted(df.iteration.astype(int).unique()) == [1, 2]
    table = ds.dataset(tmp_path / "d" / "data", format="parquet", partitioning="hive").to_table()
    assert table.schema.field("iteration").type == "int32"
    assert set(SCHEMA.names) <= set(table.schema.names)
    hf = datasets.load_dataset("parquet", data_dir=str(tmp_path / "d" / "data"), split="train")
    assert hf.num_rows == 20 and isinstance(hf[0]["video"], bytes)
    one = datasets.load_dataset("parquet", data_files=str(tmp_path / "d/data/iteration=2/*.parquet"), split="train")
    assert one.num_rows == 8
    assert decode(df.video.iloc[0])[0].shape == (5, 16, 16, 3)


def test_writing_a_round_again_replaces_instead_of_duplicating(tmp_path):
    for _ in range(2):
        write_shards(_rows(), tmp_path, "d", 1, "r-it001-x", max_rows=100)
    files = list((tmp_path / "d").rglob("*"))
    assert [f.name for f in files if f.is_file()] == ["part-r-it001-x-00000.parquet"]  # no leftovers either
    assert len(pd.read_parquet(tmp_path / "d" / "data")) == 12


def test_inspect_counts_per_iteration_and_decision(tmp_path):
    write_shards(_rows(), tmp_path, "d", 1, "r-it001-x", max_rows=100)
    counts = inspect(tmp_path).set_index("decision")
    assert counts.loc["accepted", "sets"] == 1 and counts.loc["needs_review", "sets"] == 2
    assert counts.loc["accepted", "selected"] == 1 and counts.loc["needs_review", "candidates"] == 8


def test_roots_in_the_old_layout_are_migrated_and_recorded_shard_paths_still_resolve(tmp_path):
    import os

    from mora.datasets.sets import stream_sets
    from mora.datasets.shards import data_dir, locate_shard, open_dataset

    write_shards(_rows(), tmp_path, "d", 1, "r-it001-x", max_rows=5)  # a set straddles two parts
    new = data_dir(tmp_path, "d") / "iteration=1"
    os.replace(new, tmp_path / "d" / "iteration=1")  # as a root written before the card existed
    data_dir(tmp_path, "d").rmdir()
    recorded = tmp_path / "d" / "iteration=1" / "part-r-it001-x-00001.parquet"  # a review record's path
    write_shards(_rows(2, round_id="r-it002-y"), tmp_path, "d", 2, "r-it002-y", max_rows=100)
    assert not (tmp_path / "d" / "iteration=1").exists() and (new / recorded.name).is_file()
    assert locate_shard(tmp_path, "d", recorded) == new / recorded.name
    assert open_dataset(tmp_path, "d").count_rows() == 20
    (tmp_path / "d" / "README.md").write_text("---\npretty_name: d\n---\n")  # the card beside the data
    assert len(pd.read_parquet(data_dir(tmp_path, "d"))) == 20
    sets = list(stream_sets(tmp_path, "d"))
    assert [(s.iteration, len(s.rows)) for s in sets] == [(1, 4)] * 3 + [(2, 4)] * 2
    assert [r["candidate_index"] for r in sets[1].rows] == [0, 1, 2, 3]


KILLED_WRITER = """
import sys
from pathlib import Path
from mora.atomic import write_atomic

def write(tmp):
    tmp.write_bytes(b"PAR1 half a shard")
    print("writing", flush=True)
    sys.stdin.read()  # held here, mid-write, until killed

write_atomic(Path(sys.argv[1]), write)
"""


def test_a_temporary_left_by_a_writer_killed_mid_write_is_removed_by_the_next_write(tmp_path):
    import subprocess
    import sys

    from mora.datasets.shards import to_table, write_parquet

    folder = tmp_path / "tiny" / "data" / "iteration=1"
    proc = subprocess.Popen([sys.executable, "-c", KILLED_WRITER, str(folder / "part-r-00000.parquet")],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline() == "writing\n"
    proc.kill()
    proc.wait()
    (left,) = folder.glob(".*.tmp")  # hidden: readers skip it, but it stayed for good
    write_parquet(to_table(_rows(1)), folder / "part-r-00001.parquet")
    assert not left.exists()
    assert sorted(p.name for p in folder.iterdir()) == ["part-r-00001.parquet"]
    proc.stdin.close()
    proc.stdout.close()


def test_only_temporaries_of_writers_that_are_gone_are_removed(tmp_path):
    import os

    from mora.atomic import HOST, remove_stale_temporaries

    live = tmp_path / f".part-a.parquet.{HOST}-{os.getpid()}-{'a' * 32}.tmp"  # a writer at work (two drivers)
    elsewhere = tmp_path / f".part-b.parquet.node-7-4242-{'b' * 32}.tmp"  # another host: its own business
    old = tmp_path / f".part-c.parquet.{'c' * 32}.tmp"  # an older mora's, unnamed: stale after an hour
    fresh = tmp_path / f".part-d.parquet.{'d' * 32}.tmp"
    for path in (live, elsewhere, old, fresh):
        path.write_bytes(b"x")
    os.utime(old, (0, 0))
    assert remove_stale_temporaries(tmp_path) == [old]
    assert live.exists() and elsewhere.exists() and fresh.exists()


def test_the_start_of_a_round_removes_temporaries_of_killed_writers(tiny_config_file):
    from mora.atomic import HOST
    from mora.config import load_config
    from mora.datasets.shards import iteration_dir
    from mora.round import driver
    from mora.round.state import PlannedPrompt, RoundState

    cfg = load_config(tiny_config_file)
    state = RoundState(cfg)
    prompts = [PlannedPrompt(0, "a fox", "seed", "a fox", "none")]
    state.save_set("p00000", [])  # every set staged: the driver only writes the shard
    dead = 2 ** 22 + 1  # above the largest pid Linux hands out (PID_MAX_LIMIT): no process has it
    other = iteration_dir(cfg.shards.root, cfg.shards.dataset, 2)  # another iteration's folder, written by no one
    shard_tmp = other / f".part-x-00000.parquet.{HOST}-{dead}-{'e' * 32}.tmp"
    set_tmp = state.sets_dir / f".p00001.parquet.{HOST}-{dead}-{'f' * 32}.tmp"
    for path in (shard_tmp, set_tmp):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"half")
    driver.make_sets(cfg, state, prompts, datetime.now(UTC))
    assert not shard_tmp.exists() and not set_tmp.exists()
def test_shards_of_schema_3_are_read_as_they_are_and_migrate_to_the_current_schema(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from mora.datasets.facts import dataset_facts
    from mora.datasets.sets import stream_sets
    from mora.datasets.shards import iteration_dir, migrate_shards

    v3 = SCHEMA.remove(SCHEMA.get_field_index("routing"))  # what rounds wrote before review routing
    old = iteration_dir(tmp_path, "d", 1) / "part-r-it001-x-00000.parquet"
    old.parent.mkdir(parents=True)
    rows = [r | {"schema_version": 3} for r in _rows()]
    pq.write_table(pa.Table.from_pylist(rows, schema=v3), old)
    write_shards(_rows(round_id="r-it002-x"), tmp_path, "d", 2, "r-it002-x", max_rows=100)  # today's schema
    assert [s.first["routing"] for s in stream_sets(tmp_path, "d")] == [None] * 6  # read with the current schema
    assert [r["rule"] for r in dataset_facts(tmp_path, "d").routing] == ["agreement"] * 3  # 1, 2 and all
    before = pq.read_table(old).to_pylist()
    assert migrate_shards(tmp_path, "d") == [old]
    assert pq.read_schema(old).remove_metadata().equals(SCHEMA)
    migrated = pq.read_table(old).to_pylist()
    assert [r["schema_version"] for r in migrated] == [SCHEMA_VERSION] * 12
    assert [r["routing"] for r in migrated] == [None] * 12
    assert [{k: v for k, v in r.items() if k not in ("routing", "schema_version")} for r in migrated] == \
        [{k: v for k, v in r.items() if k != "schema_version"} for r in before]
    df = pd.read_parquet(tmp_path / "d" / "data")  # one schema across the root now
    assert "routing" in df.columns and len(df) == 24
    assert migrate_shards(tmp_path, "d") == []
