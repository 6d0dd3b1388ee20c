"""The review screen's parts that need no server: layout, keys, judges' table, review copies, verdicts."""

from datetime import UTC, datetime

import numpy as np

from mora.media import decode, encode_mp4
from mora.review.clips import review_clip, review_plan
from mora.review.collect import majority
from mora.review.instructions import project_instructions
from mora.review.labeling import judges_table, labeling_config, task_payload


def test_players_share_one_sync_group_at_the_clips_frame_rate_and_keys_follow_the_layout():
    config = labeling_config()
    assert config.count('sync="candidates"') == 4 and config.count('frameRate="$fps"') == 4
    for key, name in zip("1234", ("candidate_0", "candidate_1", "candidate_2", "candidate_3"), strict=True):
        # each key twice: a hidden twin before the visible choice, so a second press never unticks it
        assert config.count(f'<Choice value="{name}" hotkey="{key}"') == 2
    assert config.count('<Choice value="reject_all" hotkey="0,r"') == 2
    assert "Ranker" not in config and "<Ranker" in labeling_config(rankings=True)


def _judge(name, ranking, scores, abstained=False):
    return {"judge": name, "ranking": ranking, "scores": scores, "abstained": abstained, "confidence": 0.1,
            "reason": "timeout" if abstained else None}


def test_the_judges_table_marks_a_split_winner_and_the_ranks_they_differ_on():
    split = judges_table([_judge("a", [2, 0, 1, 3], [0.3, 0.1, 0.5, 0.0]), _judge("b", [0, 2, 1, 3], [.6, .1, .2, 0])])
    assert "disagree on the winner" in split and split.count('class="split"') == 2
    assert '<td class="">#3 · 0.10</td>' in split  # candidate 1 is third for both: not shaded
    assert split.count('class="differ"') == 2  # candidates 0 and 2 for the judge that did not put them first
    agreed = judges_table([_judge("a", [1, 0, 2, 3], [0] * 4), _judge("b", [1, 0, 3, 2], None),
                           _judge("c", [], [0] * 4, abstained=True)])
    assert "agree on the winner" in agreed and "split" not in agreed and "abstained: timeout" in agreed


def test_the_task_shows_both_prompts_and_what_wins_and_escapes_model_text():
    record = {"set_id": "s/p0", "prompt": "a fox", "enhanced_prompt": "a <b>red</b> fox", "criterion": "realism",
              "iteration": 1, "judges": [_judge("a", [1, 0, 2, 3], [0] * 4)]}
    data = task_payload(record, [f"/v{i}" for i in range(4)], fps=8.0, repeats=3)["data"]
    assert "&lt;b&gt;red&lt;/b&gt;" in data["head"] and "Original prompt: a fox" in data["head"]
    assert "look the most like the real world" in data["brief"] and "repeat 3x" in data["brief"]
    assert data["fps"] == 8.0 and [c["id"] for c in data["candidate_list"]][1] == "candidate_1"
    assert project_instructions().count("<li>") == 10


def test_the_judges_pick_is_a_prediction_only_for_projects_that_pre_label():
    """A task opened from the Data Manager selects its first prediction whatever the project's setting:
    without --preannotate there must be none to select."""
    record = {"set_id": "s/p0", "prompt": "a fox", "enhanced_prompt": "a fox", "criterion": "realism",
              "iteration": 1, "judges": [_judge("a", [1, 0, 2, 3], [0] * 4), _judge("b", [2, 0, 1, 3], [0] * 4)]}
    plain = task_payload(record, [f"/v{i}" for i in range(4)])
    assert "predictions" not in plain and "#1" in plain["data"]["brief"]  # the judges' ranks stay in the text
    (prediction,) = task_payload(record, [f"/v{i}" for i in range(4)], preannotate=True)["predictions"]
    assert prediction["result"][0]["value"]["choices"] == ["candidate_1"]


def test_review_copies_are_enlarged_and_looped_and_big_long_clips_are_kept():
    assert review_plan(64, 64, 17, 8.0) == (4, 3)
    assert review_plan(1024, 576, 96, 8.0) == (1, 1)
    clip = encode_mp4(np.random.default_rng(0).integers(0, 255, (9, 64, 64, 3), dtype=np.uint8), 8.0)
    frames, fps = decode(review_clip(clip))
    assert frames.shape == (54, 256, 256, 3) and fps == 8.0  # 9 frames x 6 = 6.75 s at the same rate


def test_a_verdict_carries_the_submit_time_and_a_full_ranking():
    def ann(choice, who, when, order=None):
        result = [{"from_name": "choice", "value": {"choices": [choice]}}]
        if order:
            result.append({"from_name": "ranking", "type": "ranker", "value": {"ranker": {"candidate_list": order}}})
        return {"result": result, "completed_by": who, "lead_time": 2.0, "updated_at": when}

    verdict = majority([ann("candidate_2", 1, "2026-11-20T10:00:00.5Z", ["candidate_2", "candidate_0",
                                                                         "candidate_3", "candidate_1"]),
                        ann("candidate_2", 2, "2026-11-20T11:30:00Z")], {1: "ann@x", 2: "bob@x"})
    assert verdict.reviewed_at == datetime(2026, 11, 20, 11, 30, tzinfo=UTC)
    assert verdict.ranking == [2, 0, 3, 1] and verdict.reviewers == ["ann@x", "bob@x"]
    untouched = ["candidate_0", "candidate_1", "candidate_2", "candidate_3"]  # the Ranker as shown, never dragged
    assert majority([ann("candidate_2", 1, "2026-11-20T10:00:00Z", untouched)], {}).ranking is None


def test_the_rounds_next_steps_are_whole_lines_with_a_command_that_exists(monkeypatch, tmp_path):
    from types import SimpleNamespace

    from rich.console import Console

    from mora import cli

    out = Console(width=60, record=True, file=open(tmp_path / "out.txt", "w"))  # noqa: SIM115
    monkeypatch.setattr(cli, "console", out)
    cfg = SimpleNamespace(shards=SimpleNamespace(root="/very/long/shard/root/for/the/nightly/rounds", dataset="tiny"))
    cli._print_summary({"round_id": "r1", "shards": [], "pending_reviews": 2}, cfg)
    lines = out.export_text().splitlines()
    push = next(line.split() for line in lines if " review push " in line)
    assert push[1:] == ["review", "push", "--root", "/very/long/shard/root/for/the/nightly/rounds", "--dataset", "tiny"]
    assert push[0] == "mora" or cli.Path(push[0]).resolve().is_file()
    assert any(line.split()[:2] == ["make", "review-env"] for line in lines if line.strip())
