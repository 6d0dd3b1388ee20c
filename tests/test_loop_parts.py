"""The parts that make the loop advance: iteration-aware seeds and prompts, `iteration: next`, review
waits, paged contact sheets. Plain Python on real files; no Prefect."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from mora.config import ConfigError, load_config
from mora.datasets.contact_sheet import write_contact_sheets
from mora.datasets.shards import write_shards
from mora.media import encode_mp4
from mora.prompts.novelty import PromptPool
from mora.review.waits import due_waits, end_wait, start_wait
from mora.round import steps
from mora.round.history import (
    earlier_prompts,
    final_checkpoint,
    mark_nothing_to_train,
    newest_checkpoint,
    next_iteration,
    rounds_dir,
)

SYNTHESIZED = {"prompts.source": "synthesizer", "prompts.enhance": "false", "prompts.model": ""}


def test_every_derived_seed_names_the_iteration(tiny_config_file):
    one, two = (load_config(tiny_config_file, {"iteration": str(k)}) for k in (1, 2))
    for purpose in (("candidate", 0, 0), ("criterion", 3), ("orders", 3), ("invent",), ("enhance",)):
        assert steps.round_seed(one, *purpose) == steps.round_seed(one, *purpose)
        assert steps.round_seed(one, *purpose) != steps.round_seed(two, *purpose)


def test_prompts_of_an_iteration_are_new_to_the_dataset_and_reproducible(tiny_config_file):
    cfg = {k: load_config(tiny_config_file, SYNTHESIZED | {"iteration": str(k), "prompts.count": "40"})
           for k in (1, 2)}
    first = [p.prompt for p in steps.plan_prompts(cfg[1], None)]
    assert first == [p.prompt for p in steps.plan_prompts(cfg[1], None)]  # same config and iteration: same round
    second = [p.prompt for p in steps.plan_prompts(cfg[2], None, earlier=first)]
    assert len(second) == 40 and not set(first) & set(second)
    pool = PromptPool(first)
    assert not pool.new(second[:1] + [first[0].upper() + "!", "  " + first[1].replace(" ", "  ")])[1:]


def test_near_repeats_are_repeats():
    pool = PromptPool(["A red fox runs through the snow, at dawn."])
    assert pool.new(["a red fox runs through snow at dawn", "at dawn, a red fox runs through the snow",
                     "a red fox runs through snow at dusk"]) == ["a red fox runs through snow at dusk"]


def test_a_dataset_out_of_new_prompts_says_so_in_one_line(tiny_config_file, monkeypatch):
    cfg = load_config(tiny_config_file, SYNTHESIZED | {"prompts.count": "5"})
    monkeypatch.setattr(steps, "synthesize_prompts", lambda n, seed: ["a fox runs in snow, film grain, close-up"])
    with pytest.raises(ConfigError, match="only 1 prompts are new to dataset 'tiny'"):
        steps.plan_prompts(cfg, None)


def _round_dir(root, dataset, iteration, complete, prompts=()):
    path = rounds_dir(root, dataset) / f"{dataset}-it{iteration:03d}-{iteration:010x}"
    path.mkdir(parents=True)
    (path / "prompts.json").write_text(json.dumps([{"prompt": p} for p in prompts]))
    if complete:
        (path / "complete.json").write_text("{}")
    return path


def _final_checkpoint(checkpoints, iteration, final=True, run="run"):
    step = checkpoints / f"iteration={iteration}" / run / "step-00012"
    step.mkdir(parents=True)
    (step / "lineage.json").write_text(json.dumps({"final": final}))
    return step


def test_iteration_next_resumes_the_open_iteration_else_starts_the_next(tiny_config_file):
    cfg = load_config(tiny_config_file)
    root, dataset = cfg.shards.root, cfg.shards.dataset
    nxt = load_config(tiny_config_file, {"iteration": "next"})
    assert nxt.iteration == 1 and next_iteration(root, dataset) == 1
    _round_dir(root, dataset, 1, complete=True, prompts=["a fox"])
    assert load_config(tiny_config_file, {"iteration": "next"}).iteration == 2
    _round_dir(root, dataset, 2, complete=False, prompts=["a boat"])
    assert load_config(tiny_config_file, {"iteration": "next"}).round_id.startswith("tiny-it002-")
    assert earlier_prompts(root, dataset, 2) == ["a fox"]
    assert sorted(earlier_prompts(root, dataset, 3)) == ["a boat", "a fox"]
    # the self-training loop: an iteration is finished once its fine-tuning is
    checkpoints = root / "_checkpoints" / dataset
    assert next_iteration(root, dataset, checkpoints) == 2
    (rounds_dir(root, dataset) / f"{dataset}-it002-{2:010x}" / "complete.json").write_text("{}")
    assert next_iteration(root, dataset) == 3 and next_iteration(root, dataset, checkpoints) == 2
    _final_checkpoint(checkpoints, 1)
    _final_checkpoint(checkpoints, 2, final=False)
    assert next_iteration(root, dataset, checkpoints) == 2 and final_checkpoint(checkpoints, 2) is None
    last = _final_checkpoint(checkpoints, 2, run="rerun").parent
    assert next_iteration(root, dataset, checkpoints) == 3 and final_checkpoint(checkpoints, 2).parent == last


def test_an_iteration_with_nothing_to_train_is_finished_and_the_last_weights_carry_on(tiny_config_file):
    cfg = load_config(tiny_config_file)
    root, dataset = cfg.shards.root, cfg.shards.dataset
    checkpoints = root / "_checkpoints" / dataset
    for k in (1, 2):
        _round_dir(root, dataset, k, complete=True, prompts=[f"prompt {k}"])
    first = _final_checkpoint(checkpoints, 1)
    assert next_iteration(root, dataset, checkpoints) == 2 and newest_checkpoint(checkpoints, before=3) == first
    mark_nothing_to_train(checkpoints, 2, "iteration 2 of 'tiny' has no selected videos yet; nothing to fine-tune")
    assert next_iteration(root, dataset, checkpoints) == 3
    assert newest_checkpoint(checkpoints, before=3) == first  # iteration 3 generates with iteration 1's weights
    assert newest_checkpoint(checkpoints, before=1) is None  # the first generates with the base models


def test_shards_count_as_a_finished_iteration_and_their_prompts_as_used(tiny_config_file):
    cfg = load_config(tiny_config_file)
    root, dataset = cfg.shards.root, cfg.shards.dataset
    row = {"set_id": "x/p00000", "prompt": "a glass jellyfish drifts", "round_id": "x", "candidate_index": 0}
    write_shards([row], root, dataset, 3, "x", 256)
    assert next_iteration(root, dataset) == 4
    assert earlier_prompts(root, dataset, 4) == ["a glass jellyfish drifts"] and earlier_prompts(root, dataset, 3) == []


def test_iteration_must_be_a_number_or_next(tiny_config_file):
    with pytest.raises(ConfigError, match="iteration"):
        load_config(tiny_config_file, {"iteration": "latest"})


def test_a_review_wait_is_due_when_decided_or_overdue(tmp_path):
    root, dataset = tmp_path, "tiny"
    pending = root / "_state" / dataset / "reviews" / "pending"
    pending.mkdir(parents=True)
    (pending / "s.json").write_text(json.dumps({"status": "pushed", "iteration": 1}))
    wait = start_wait(root, dataset, 1, "run-a", timeout_s=3600)
    assert wait.suspensions == 1 and not wait.overdue and due_waits(root, dataset) == []
    again = start_wait(root, dataset, 1, "run-a", timeout_s=1)  # the same run: the first deadline holds
    assert again.deadline == wait.deadline and again.suspensions == 2
    (pending / "s.json").write_text(json.dumps({"status": "accepted", "iteration": 1}))
    assert [w.flow_run_id for w in due_waits(root, dataset)] == ["run-a"]
    end_wait(root, dataset, 1)
    assert due_waits(root, dataset) == []
    (pending / "s.json").write_text(json.dumps({"status": "pushed", "iteration": 2}))
    start_wait(root, dataset, 2, "run-b", timeout_s=0)
    assert [w.iteration for w in due_waits(root, dataset)] == [2]  # still pending, but overdue


def test_contact_sheets_show_every_set_paged_at_a_readable_size(tmp_path):
    rng = np.random.default_rng(0)
    rows = []
    for s in range(19):
        for c in range(4):
            rows.append({"round_id": "tiny-it001-abc", "set_id": f"tiny-it001-abc/p{s:05d}", "prompt_index": s,
                         "prompt": f"prompt number {s} " * 6, "criterion": "aesthetics", "candidate_index": c,
                         "decision": "accepted" if s % 2 else "needs_review", "selected": s % 2 == 1 and c == 2,
                         "gate_failures": ["static"] if c == 3 else [],
                         "video": encode_mp4(rng.integers(0, 255, (5, 64, 64, 3), dtype=np.uint8), 8)})
    paths = write_contact_sheets(rows, tmp_path, "tiny-it001-abc", sets_per_page=8)
    assert [p.name for p in paths] == [f"tiny-it001-abc-contact-sheet-00{n}.png" for n in (1, 2, 3)]
    for path in paths:
        with Image.open(path) as page:
            assert 1000 <= page.width <= 1600 and page.height <= 1100
    with Image.open(paths[2]) as last, Image.open(paths[0]) as first:
        assert last.height < first.height  # 3 sets on the last page, 8 on the others
