"""Prompts, criteria, decisions, presentation orders, seeds: the pure parts of a round."""

import pytest

from mora.agents.prompt_writer import clean_prompt, dedupe
from mora.judges.asking import presentation_orders
from mora.judges.criteria import CRITERIA, draw_criterion
from mora.judges.verdict import ACCEPTED, NEEDS_REVIEW, JudgeRanking, abstain, decide
from mora.prompts.synthesizer import synthesize_prompts
from mora.seeds import derive_seed


def test_clean_prompt_keeps_usable_lines_and_rejects_noise():
    assert clean_prompt('  "Prompt: a fox\n runs   in snow"  ') == "a fox runs in snow"
    assert clean_prompt("two words") is None
    assert clean_prompt("1234 5678 %%%% ####") is None
    assert len(clean_prompt("word " * 500).split()) == 120


def test_dedupe_ignores_case_spacing_and_punctuation():
    assert dedupe(["A fox runs.", "a  fox runs", "a dog runs", ""]) == ["A fox runs.", "a dog runs"]


def test_synthesized_prompts_are_distinct_and_reproducible():
    a, b = synthesize_prompts(50, seed=3), synthesize_prompts(50, seed=3)
    assert a == b and len(set(a)) == 50
    assert synthesize_prompts(50, seed=4) != a
    with pytest.raises(ValueError, match="prompts.count"):
        synthesize_prompts(10**6, seed=0)


def test_criteria_are_the_papers_ten_and_drawn_reproducibly():
    assert len(CRITERIA) == 10 and len({c.key for c in CRITERIA}) == 10
    assert draw_criterion(7) == draw_criterion(7)
    assert {draw_criterion(s).key for s in range(200)} == {c.key for c in CRITERIA}
    wording = {c.key: c.description for c in CRITERIA}  # the mission summary's list, for reviewers
    assert wording["object_consistency"].endswith(": object motion and interactions")
    assert wording["colour_lighting"].endswith(": smooth lighting transitions and uniform colour")
    assert wording["relevance"] == "content relevance to the task: theme alignment and task appropriateness"
    # the judges get each as the paper gives it: an instruction to rank the videos by that criterion
    for c in CRITERIA:
        asked = c.instruction(4)
        assert asked.startswith("Rank the four videos by ") and asked.endswith(".") and "{" not in asked
        assert c.description.split(":")[0].split()[-1] in asked  # the criterion's own name is in it
    assert CRITERIA[0].instruction(6).startswith("Rank the six videos")


def test_seeds_are_stable_and_distinct_per_purpose():
    assert derive_seed(0, "candidate", 1, 2) == derive_seed(0, "candidate", 1, 2)
    seeds = {derive_seed(0, "candidate", i, j) for i in range(20) for j in range(4)}
    assert len(seeds) == 80 and all(0 <= s < 2**63 for s in seeds)


def test_presentation_orders_include_identity_and_reverse_and_are_distinct():
    assert presentation_orders(4, 2, seed=1) == [[0, 1, 2, 3], [3, 2, 1, 0]]
    orders = presentation_orders(4, 5, seed=1)
    assert orders[0] == [0, 1, 2, 3] and [3, 2, 1, 0] in orders
    assert len({tuple(o) for o in orders}) == 5 and all(sorted(o) == [0, 1, 2, 3] for o in orders)
    assert len(presentation_orders(2, 10, seed=1)) == 2  # only two orders of two exist


def test_as_many_orders_as_candidates_show_each_candidate_in_every_position():
    for n in (2, 3, 4):
        orders = presentation_orders(n, n, seed=3)
        for candidate in range(n):
            assert sorted(order.index(candidate) for order in orders) == list(range(n))


def _ranking(judge, ranking):
    return JudgeRanking(judge=judge, model="m", ranking=ranking, scores=[0.25] * 4, confidence=0.1)


def test_decision_rules():
    agree = decide([_ranking("a", [2, 0, 1, 3]), _ranking("b", [2, 3, 1, 0])])
    assert (agree.decision, agree.winner) == (ACCEPTED, 2)
    disagree = decide([_ranking("a", [2, 0, 1, 3]), _ranking("b", [0, 2, 1, 3])])
    assert (disagree.decision, disagree.winner) == (NEEDS_REVIEW, None)
    assert "a picks 2" in disagree.reason and "b picks 0" in disagree.reason
    abstained = decide([_ranking("a", [2, 0, 1, 3]), abstain("b", "m", 4, "no clean ranking")])
    assert abstained.decision == NEEDS_REVIEW and "no clean ranking" in abstained.reason
