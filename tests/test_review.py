"""Human review against a real Label Studio on 127.0.0.1, started by the test suite.

The server runs from its own virtualenv (`make review-env`); a migrated data folder is cached under
.mora/cache so a start takes seconds instead of the ~20 s of a first migration.
"""

import shutil
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest

from mora.config import load_config
from mora.datasets.shards import data_dir
from mora.flows.round import dataset_round
from mora.review import server
from mora.review.collect import collect, majority
from mora.review.labeling import media_url
from mora.review.pending import pending_counts, records, update_record
from mora.review.push import client_for, media_dir, push, tasks_by_set
from mora.review.server import ReviewServerError
from mora.review.waiting import wait_until_decided
from mora.training.data import ShardVideoDataset
from tests.conftest import EVERY_SET_REVIEWED, SLOW_S, free_port, write_tiny_config

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[1]
TEMPLATE = REPO / ".mora" / "cache" / "label-studio"



@pytest.fixture(scope="module")
def review(tmp_path_factory, tiny_models):
    """A shard root with one finished tiny round (every set needs review) and a Label Studio for it."""
    if not (TEMPLATE / "credentials.json").exists():
        cold = tmp_path_factory.mktemp("ls-cold") / "data"
        server.up(cold, port=free_port(), wait_s=900)  # its first migration: minutes on a busy machine
        server.down(cold)
        shutil.copytree(server.server_dir(cold), TEMPLATE, ignore=shutil.ignore_patterns("server.*"))
    config = write_tiny_config(tiny_models, tmp_path_factory.mktemp("review"))
    overrides = {"prompts.count": "3", "generation.num_frames": "9"} | EVERY_SET_REVIEWED
    dataset_round(str(config), overrides)
    cfg = load_config(config, overrides)
    root = cfg.shards.root
    shutil.copytree(TEMPLATE, server.server_dir(root))
    port, ticks = free_port(), []
    conn = server.up(root, port=port, waiting=ticks.append, wait_s=900)
    yield {"root": root, "dataset": cfg.shards.dataset, "conn": conn, "port": port, "config": config,
           "overrides": overrides, "ticks": ticks}
    server.down(root)


def test_pushing_makes_one_task_per_set_with_videos_and_the_judges_pick(review):
    root, dataset, conn = review["root"], review["dataset"], review["conn"]
    assert review["ticks"] and review["ticks"] == sorted(review["ticks"])  # progress while it started
    first = push(conn, root, dataset)
    assert len(first.pushed) == 3 and not first.found
    again = push(conn, root, dataset)
    assert not again.pushed and not again.found  # nothing pending is left to push
    client = client_for(conn)
    project = first.projects[1]
    tasks = list(client.tasks.list(project=project, fields="all"))
    assert len(tasks) == 3 and {t.data["set_id"] for t in tasks} == set(first.pushed)
    task = tasks[0]
    assert [k for k in task.data if k.startswith("video_")] == ["video_0", "video_1", "video_2", "video_3"]
    assert "Criterion:" in task.data["criterion"] and task.data["judges"].startswith("Judges.")
    assert task.data["fps"] == 8.0 and "<table>" in task.data["brief"] and task.data["original_prompt"]
    settings = client.projects.get(id=project)
    assert settings.show_skip_button and not settings.show_collab_predictions  # Skip shown, nothing pre-selected
    assert "temporal coherence" in settings.expert_instruction
    video = httpx.get(conn.url + task.data["video_0"], headers={"Authorization": f"Token {conn.token}"},
                      timeout=SLOW_S)
    assert video.status_code == 200 and video.content[4:8] == b"ftyp"  # an mp4, served from the media root
    escape = httpx.get(conn.url + "/data/local-files/?d=../../../../etc/passwd",
                       headers={"Authorization": f"Token {conn.token}"}, timeout=SLOW_S)
    assert escape.status_code != 200
    anonymous = httpx.get(conn.url + "/api/projects/", timeout=SLOW_S)
    assert anonymous.status_code in (401, 403)
    with httpx.Client(base_url=conn.url, follow_redirects=True, timeout=SLOW_S) as browser:  # signup without an invite
        form = browser.get("/user/signup/")
        csrf = browser.cookies.get("csrftoken", "")
        browser.post("/user/signup/", data={"email": "intruder@x.org", "password": "intruder-pass-1",
                                            "csrfmiddlewaretoken": csrf}, headers={"Referer": str(form.url)})
    assert [u.email for u in client.users.list()] == ["admin@mora.local"]
    assert all(r["status"] == "pushed" and r["task_id"] for r in records(root, dataset))
    assert all(not t.total_predictions for t in tasks)  # nothing for the Data Manager to pre-select


def test_a_crash_between_creating_tasks_and_recording_them_never_duplicates(review):
    root, dataset, conn = review["root"], review["dataset"], review["conn"]
    push(conn, root, dataset)
    for record in records(root, dataset):  # as if the push died before it recorded anything
        update_record(root, dataset, record | {"status": "pending", "task_id": None})
    result = push(conn, root, dataset)
    assert not result.pushed and len(result.found) == 3
    assert len(tasks_by_set(client_for(conn), result.projects[1])) == 3


def test_a_server_down_during_push_loses_nothing_and_pushes_once_when_back(review):
    root, dataset, conn = review["root"], review["dataset"], review["conn"]
    push(conn, root, dataset)
    victim = records(root, dataset)[0]
    client = client_for(conn)
    client.tasks.delete(id=victim["task_id"])  # a set the server has never seen
    update_record(root, dataset, victim | {"status": "pending", "task_id": None})
    server.down(root)
    with pytest.raises(ReviewServerError, match="unreachable.*mora review up") as err:
        push(conn, root, dataset)
    assert "\n" not in str(err.value) and conn.token not in str(err.value)
    assert [r["status"] for r in records(root, dataset)].count("pending") == 1
    conn = server.up(root, port=review["port"])
    result = push(conn, root, dataset)
    assert result.pushed == [victim["set_id"]]
    assert len(tasks_by_set(client_for(conn), result.projects[1])) == 3


def _annotate(client, task_id, choice, reason=None, lead_time=7.5):
    result = [{"from_name": "choice", "to_name": "video_0", "type": "choices", "value": {"choices": [choice]}}]
    if reason:
        result.append({"from_name": "reason", "to_name": "video_0", "type": "textarea", "value": {"text": [reason]}})
    client.annotations.create(id=task_id, result=result, lead_time=lead_time)


def test_collect_turns_choices_into_rows_and_reject_all_into_discards(review):
    root, dataset, conn = review["root"], review["dataset"], review["conn"]
    push(conn, root, dataset)
    client = client_for(conn)
    chosen, rejected, waiting = records(root, dataset)
    _annotate(client, chosen["task_id"], "candidate_2", "sharpest fox, smooth motion", lead_time=12.0)
    _annotate(client, rejected["task_id"], "reject_all", "all four are static noise")
    result = collect(conn, root, dataset)
    assert result.accepted == [chosen["set_id"]] and result.discarded == [rejected["set_id"]]
    assert result.waiting == [waiting["set_id"]]
    df = pd.read_parquet(data_dir(root, dataset))
    got = df[df.set_id == chosen["set_id"]].sort_values("candidate_index")
    assert got.decision.eq("accepted").all() and got.decision_source.eq("human").all()
    assert got.selected.tolist() == [False, False, True, False]
    review_info = got.review.iloc[0]
    assert list(review_info["reviewers"]) == ["admin@mora.local"] and review_info["lead_time_s"] == 12.0
    submitted = client.annotations.list(id=chosen["task_id"])[0]
    assert review_info["reviewed_at"] == pd.Timestamp(submitted.updated_at or submitted.created_at)
    assert review_info["reason"] == "sharpest fox, smooth motion" and review_info["choice"] == "candidate_2"
    gone = df[df.set_id == rejected["set_id"]]
    assert gone.decision.eq("discarded").all() and not gone.selected.any()
    assert "static noise" in gone.decision_reason.iloc[0]
    assert len(df) == 12 and df.groupby("set_id").size().eq(4).all()  # replaced, never duplicated
    assert pending_counts(root) == {(dataset, 1): 1}
    shard = next(Path(root).rglob("part-*.parquet"))
    before = shard.stat().st_mtime_ns
    again = collect(conn, root, dataset)
    assert not again.accepted and not again.discarded and shard.stat().st_mtime_ns == before


def test_majority_rule_with_several_annotators():
    def ann(choice, who, cancelled=False):
        return {"result": [{"from_name": "choice", "value": {"choices": [choice]}}], "completed_by": who,
                "was_cancelled": cancelled, "lead_time": 3.0}

    names = {1: "ann@x", 2: "bob@x", 3: "cy@x"}
    assert majority([ann("candidate_1", 1)], names).choice == "candidate_1"
    assert majority([ann("candidate_1", 1), ann("candidate_3", 2)], names) is None  # a tie keeps it pending
    verdict = majority([ann("candidate_1", 1), ann("candidate_3", 2), ann("candidate_1", 3)], names)
    assert verdict.choice == "candidate_1" and verdict.reviewers == ["ann@x", "cy@x"] and verdict.annotations == 3
    assert majority([ann("candidate_1", 1, cancelled=True)], names) is None
    assert majority([], names) is None


def test_media_urls_cannot_leave_the_media_root(tmp_path):
    assert media_url(tmp_path / "a" / "b.mp4", tmp_path) == "/data/local-files/?d=a/b.mp4"
    with pytest.raises(ValueError, match="outside the media folder"):
        media_url(tmp_path / ".." / "etc" / "passwd", tmp_path)


def test_the_collect_flow_pushes_and_collects_as_a_prefect_run(review):
    from mora.flows.review import collect_reviews

    root, dataset, conn = review["root"], review["dataset"], review["conn"]
    unpushed = len(records(root, dataset, "pending"))
    summary = collect_reviews(str(root), dataset)
    assert summary["pushed"] == unpushed and summary["pending"] == summary["waiting"] > 0
    waiting = records(root, dataset, "pushed")
    assert len(waiting) == summary["waiting"]
    _annotate(client_for(conn), waiting[0]["task_id"], "candidate_0")
    summary = collect_reviews(str(root), dataset)
    assert summary["pushed"] == 0 and summary["accepted"] == 1 and summary["pending"] == len(waiting) - 1


def test_the_token_can_come_from_a_prefect_secret_block(monkeypatch):
    from prefect.blocks.system import Secret

    Secret(value="tok-from-block-123").save("mora-ls-token-test", overwrite=True)
    monkeypatch.setenv("MORA_LABEL_STUDIO_URL", "http://127.0.0.1:8090/")
    monkeypatch.delenv("MORA_LABEL_STUDIO_TOKEN", raising=False)
    monkeypatch.setenv("MORA_LABEL_STUDIO_TOKEN_BLOCK", "mora-ls-token-test")
    conn = server.connect()
    assert conn.url == "http://127.0.0.1:8090" and conn.token == "tok-from-block-123"
    assert "tok-from-block" not in repr(conn)


def test_the_training_loop_waits_for_reviewers_and_trains_on_their_choices(review):
    root, dataset, conn = review["root"], review["dataset"], review["conn"]
    dataset_round(str(review["config"]), review["overrides"] | {"iteration": "2"})
    assert pending_counts(root)[(dataset, 2)] == 3
    client, seen = client_for(conn), set()

    def reviewer():  # a person in Label Studio, picking candidate_1 on each task as it appears
        deadline = time.monotonic() + 600  # bounds, not paces: pushing encodes review copies (slow when busy)
        while len(seen) < 3 and time.monotonic() < deadline:
            for record in records(root, dataset):
                if record["iteration"] == 2 and record.get("task_id") and record["set_id"] not in seen:
                    _annotate(client, record["task_id"], "candidate_1")
                    seen.add(record["set_id"])
            time.sleep(0.2)

    person = threading.Thread(target=reviewer)
    person.start()
    waiting = wait_until_decided(root, dataset, 2, timeout_s=600, poll_s=0.5, log=lambda message: None)
    person.join()
    assert waiting == 0 and len(seen) == 3
    assert ShardVideoDataset(root, dataset, [2]).count() == 3  # the reviewers' picks are training examples
    assert ShardVideoDataset(root, dataset, [2], sources=("judges",)).count() == 0  # the no-review ablation
    assert wait_until_decided(root, dataset, 3, timeout_s=0.1, poll_s=1, log=lambda m: None) == 0


ARTIFACTS = REPO / ".mora" / "test-artifacts"  # screenshots of the review screen, kept after the run
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--no-first-run", "--autoplay-policy=no-user-gesture-required"]


def _signed_in(browser, login_url: str, email: str, password: str):
    """A 1440x900 page signed in to Label Studio; every wait on it bounded by 120 s (a busy machine)."""
    page = browser.new_page(viewport={"width": 1440, "height": 900})
    page.set_default_timeout(120_000)
    page.goto(login_url)
    page.fill("input[name=email]", email)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    page.wait_for_url(lambda url: "/user/login" not in url)
    return page


def test_a_second_reviewer_decides_by_keyboard_on_one_screen_in_chromium(review):
    """Headless Debian Chromium (Playwright) at 1440x900, as a reviewer `add-reviewer` created."""
    from playwright.sync_api import sync_playwright

    from mora.review.reviewers import add_reviewer

    root, dataset, conn = review["root"], review["dataset"], review["conn"]
    dataset_round(str(review["config"]), review["overrides"] | {"iteration": "4"})
    push(conn, root, dataset)
    fresh = [r for r in records(root, dataset) if r["iteration"] == 4]
    assert fresh, "the tiny round sent no set to review"
    record = min(fresh, key=lambda r: r["task_id"])  # the label stream opens tasks in order
    person = add_reviewer(conn, "ann@example.org")
    assert "ann@example.org" in [u.email for u in client_for(conn).users.list()]
    with pytest.raises(ReviewServerError, match="has an account already"):
        add_reviewer(conn, "ann@example.org")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=shutil.which("chromium") or "/usr/bin/chromium",
                                     args=CHROMIUM_FLAGS)
        page = _signed_in(browser, person.login_url, person.email, person.password)
        page.goto(f"{conn.url}/projects/{record['project_id']}/data?labeling=1")
        page.wait_for_function("document.querySelectorAll('video').length === 4")
        page.wait_for_function("[...document.querySelectorAll('video')].every(v => v.readyState >= 2)")
        page.screenshot(path=str(ARTIFACTS / "review-task.png"))
        checked = "[...document.querySelectorAll('.lsf-choice input')].map(c => c.checked)"
        assert not any(page.evaluate(checked))  # nothing pre-selected
        boxes = [page.locator(".lsf-video__main").nth(i).bounding_box() for i in range(4)]
        boxes += [c.bounding_box() for c in page.locator(".lsf-choice input").all() if c.is_visible()]
        boxes.append(page.locator("textarea").first.bounding_box())
        assert len(boxes) == 4 + 5 + 1
        assert all(0 <= b["x"] and b["x"] + b["width"] <= 1440 and 0 <= b["y"] and b["y"] + b["height"] <= 900
                   for b in boxes), boxes  # all in the viewport, nothing scrolled
        assert page.evaluate("window.scrollY") == 0
        assert all(b["width"] > 200 and b["height"] > 200 for b in boxes[:4])  # players fill their cells

        assert page.locator(".mora-stream-only").first.is_visible()  # Skip is here, and said so
        assert not page.locator(".mora-explorer-only").first.is_visible()
        assert page.get_by_role("button", name="Skip").is_visible()
        page.locator("[data-testid='playback-button:play']").first.click()  # one control plays all four
        page.wait_for_function("[...document.querySelectorAll('video')].every(v => !v.paused && v.currentTime > 0.3)")
        page.locator("[data-testid='playback-button:pause']").first.click()  # and one pauses all four, in step
        page.wait_for_function("[...document.querySelectorAll('video')].every(v => v.paused && !v.seeking)")
        times = page.evaluate("[...document.querySelectorAll('video')].map(v => v.currentTime)")
        assert min(times) > 0.3 and max(times) - min(times) < 0.01, times  # the same frame on all four

        page.locator("textarea").first.fill("the smoothest of the four")
        page.locator(".mora-head").click()  # leave the text box: keys go to the choices again
        page.keyboard.press("2")
        visible = "[...document.querySelectorAll('.lsf-choice')].filter(c => c.offsetParent).map(c => c.innerText)"
        assert page.evaluate(visible)[1].startswith("candidate_1")  # the second choice is the second candidate
        selected = ("[...document.querySelectorAll('.lsf-choice')].filter(c => c.offsetParent)"
                    ".map(c => c.querySelector('input').checked)")
        assert page.evaluate(selected) == [False, True, False, False, False]
        page.keyboard.press("2")  # again: still selected, keys never toggle off
        assert page.evaluate(selected) == [False, True, False, False, False]
        page.screenshot(path=str(ARTIFACTS / "review-task-chosen.png"))
        page.keyboard.press("Control+Enter")
        deadline = time.monotonic() + 120  # a bound on waiting for the submit, not a pace
        while not client_for(conn).annotations.list(id=record["task_id"]) and time.monotonic() < deadline:
            time.sleep(0.2)
        browser.close()
    result = collect(conn, root, dataset)
    assert record["set_id"] in result.accepted
    df = pd.read_parquet(data_dir(root, dataset))
    got = df[df.set_id == record["set_id"]].sort_values("candidate_index")
    assert got.selected.tolist() == [False, True, False, False] and got.decision_source.eq("human").all()
    decided = got.review.iloc[0]
    assert list(decided["reviewers"]) == ["ann@example.org"]  # the person who decided, not the admin
    assert decided["reason"] == "the smoothest of the four" and decided["lead_time_s"] > 0


def test_a_scripted_reviewer_answers_as_its_own_account_by_its_taste(review):
    """review: wait runs unattended: a program signs in as a reviewer and decides like one, by a property."""
    from mora.evaluation.properties import brightness
    from mora.media import decode
    from mora.review.reviewers import add_reviewer
    from mora.review.scripted import ScriptedReviewer, Taste

    root, dataset, conn = review["root"], review["dataset"], review["conn"]
    dataset_round(str(review["config"]), review["overrides"] | {"iteration": "3"})
    push(conn, root, dataset)
    mine = {r["task_id"]: r for r in records(root, dataset) if r["iteration"] == 3}
    person = add_reviewer(conn, "bright@example.org")
    reviewer = ScriptedReviewer.sign_in(conn.url, person.email, person.password, Taste("brightness", "more", 1.0))
    answers = reviewer.answer_pending(projects=lambda title: title.endswith(" iteration 3"))
    assert sorted(a.task_id for a in answers) == sorted(mine) and all(a.choice == a.preferred for a in answers)
    assert reviewer.answer_pending(projects=lambda title: title.endswith(" iteration 3")) == []  # nothing twice
    for answer in answers:  # the brightest of the four videos reviewers are shown
        media = media_dir(root, dataset) / mine[answer.task_id]["set_id"].replace("/", "__")
        shown = [brightness(decode((media / f"candidate_{i}.mp4").read_bytes())[0]) for i in range(4)]
        assert answer.choice == int(np.argmax(shown))
        (annotation,) = client_for(conn).annotations.list(id=answer.task_id)
        assert annotation.completed_by == reviewer.user_id != client_for(conn).users.whoami().id
    result = collect(conn, root, dataset)
    decided = pd.read_parquet(data_dir(root, dataset))
    decided = decided[decided.set_id.isin(result.accepted) & decided.selected]
    assert len(decided) == len(mine) and all(list(r["reviewers"]) == [person.email] for r in decided.review)
    with pytest.raises(ReviewServerError, match="could not sign in"):
        ScriptedReviewer.sign_in(conn.url, person.email, "not-the-password", Taste())
    reviewer.close()


def test_an_unreliable_reviewer_names_a_random_candidate_as_often_as_it_should():
    from mora.review.scripted import Taste

    clips = [np.full((2, 4, 4, 3), level, np.uint8) for level in (10, 200, 50, 90)]
    rng = np.random.default_rng(0)
    picks = [Taste("brightness", "more", 0.5).pick(clips, rng) for _ in range(2000)]
    assert abs(np.mean([p == 1 for p in picks]) - (0.5 + 0.5 / 4)) < 0.04  # reliable half, plus a lucky quarter
    assert {Taste("brightness", "less", 1.0).pick(clips, rng) for _ in range(20)} == {0}
    with pytest.raises(ReviewServerError, match="reliability must lie in"):
        Taste(reliability=1.5)


def test_an_unreliable_reviewer_draws_its_answer_from_the_candidates_not_the_task():
    """Task ids depend on what the server held before; two runs of one benchmark arm drew different answers."""
    from mora.review.scripted import candidates_key

    clips = [np.full((2, 4, 4, 3), level, np.uint8) for level in (10, 200, 50, 90)]
    assert candidates_key([c.copy() for c in clips]) == candidates_key(clips)
    assert candidates_key(clips[::-1]) != candidates_key(clips)
    changed = [c.copy() for c in clips]
    changed[2][0, 0, 0, 0] += 1
    assert candidates_key(changed) != candidates_key(clips)


def _disjoint(a: dict, b: dict) -> bool:
    return (a["x"] + a["width"] <= b["x"] or b["x"] + b["width"] <= a["x"] or a["y"] + a["height"] <= b["y"]
            or b["y"] + b["height"] <= a["y"])


def test_the_project_owner_opens_a_task_from_the_data_manager_in_chromium(review):
    """As a project owner opens a task: the admin, the Data Manager's table, a click on a row, 1440x900. The
    task opens beside the table (a narrower column than the label stream's): nothing is pre-selected, each
    player with its controls stays in its own cell, the choices are clear of every player, all of it on one
    screen, and the screen says how to leave a set for later (Label Studio offers Skip only in the label
    stream)."""
    import json

    from playwright.sync_api import sync_playwright

    root, dataset, conn = review["root"], review["dataset"], review["conn"]
    dataset_round(str(review["config"]), review["overrides"] | {"iteration": "5"})
    push(conn, root, dataset)
    fresh = [r for r in records(root, dataset) if r["iteration"] == 5]
    assert fresh, "the tiny round sent no set to review"
    project = fresh[0]["project_id"]
    assert not any(t.total_predictions for t in client_for(conn).tasks.list(project=project, fields="all"))
    admin = json.loads((server.server_dir(root) / "credentials.json").read_text())
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=shutil.which("chromium") or "/usr/bin/chromium",
                                     args=CHROMIUM_FLAGS)
        page = _signed_in(browser, f"{conn.url}/user/login/", admin["username"], admin["password"])
        page.goto(f"{conn.url}/projects/{project}/data")
        page.locator("[class*=row-wrapper]").first.click()  # a row of the table
        page.wait_for_function("document.querySelectorAll('video').length === 4 && "
                               "[...document.querySelectorAll('video')].every(v => v.readyState >= 2)")
        page.wait_for_function("document.querySelectorAll('.mora-grid .lsf-seeker').length === 4")  # controls drawn
        assert page.locator(".lsf-label-view__lsf-wrapper_mode_explorer").count() == 1  # the Data Manager's view
        page.screenshot(path=str(ARTIFACTS / "review-task-data-manager.png"))
        checked = "[...document.querySelectorAll('.lsf-choice input')].map(c => c.checked)"
        assert not any(page.evaluate(checked))  # nothing pre-selected
        cells = [page.locator(".mora-cell").nth(i).bounding_box() for i in range(4)]
        assert all(_disjoint(a, b) for i, a in enumerate(cells) for b in cells[i + 1:]), cells
        spill = page.evaluate("""[...document.querySelectorAll('.mora-cell')].map(cell => {
            const box = cell.getBoundingClientRect();
            return [...cell.querySelectorAll('*')].filter(e => { const r = e.getBoundingClientRect();
                return r.width > 0 && (r.left < box.left - 1 || r.right > box.right + 1); }).length; })""")
        assert spill == [0, 0, 0, 0]  # no control reaches into a neighbour (they overlapped there)
        controls = [b for b in (c.bounding_box() for c in page.locator(".mora-cell button").all()) if b]
        assert len(controls) >= 4 * 3 and all(_disjoint(a, b) for i, a in enumerate(controls) for b in controls[i + 1:])
        choices = [c.bounding_box() for c in page.locator(".lsf-choice").all() if c.is_visible()]
        assert len(choices) == 5 and all(_disjoint(c, cell) for c in choices for cell in cells)
        covered = page.evaluate("""[...document.querySelectorAll('.lsf-choice')].filter(c => c.offsetParent)
            .map(c => { const r = c.querySelector('label').getBoundingClientRect();
                        const top = document.elementFromPoint(r.left + r.width / 2, r.top + r.height / 2);
                        return c.contains(top); })""")
        assert covered == [True] * 5  # each label is what shows at its place: none drawn over
        players = [page.locator(".lsf-video__main").nth(i).bounding_box() for i in range(4)]
        assert all(b["width"] > 200 and b["height"] > 200 for b in players)
        seekers = [page.locator(".mora-cell .lsf-seeker").nth(i).bounding_box() for i in range(4)]
        assert all(0 <= b["y"] and b["y"] + b["height"] <= 900 for b in players + seekers + choices)  # one screen
        note = page.locator(".mora-explorer-only").first
        assert note.is_visible() and "open another task" in note.inner_text()
        assert not page.locator(".mora-stream-only").first.is_visible()  # "Skip" is not promised here
        assert page.get_by_role("button", name="Submit").is_visible()
        browser.close()
def test_audits_reach_reviewers_first_and_every_task_says_why_it_is_there(review):
    root, dataset, conn = review["root"], review["dataset"], review["conn"]
    config, overrides = str(review["config"]), review["overrides"] | {"iteration": "6"}
    dataset_round(config, overrides)  # the judges disagree on every set
    one_model = load_config(review["config"]).judges[0].model.id  # both judges on one model: they always agree
    agreeing = {"seed": "1", "judges.1.model.id": one_model, "judges.1.family": "llava-onevision"}
    dataset_round(config, overrides | agreeing | {"review.audit_share": "1"})  # every accepted set audited
    fresh = [r for r in records(root, dataset) if r["iteration"] == 6]
    assert sorted(r["audit"] for r in fresh) == [False] * 3 + [True] * 3
    result = push(conn, root, dataset)
    client = client_for(conn)
    project = result.projects[6]
    tasks = sorted(client.tasks.list(project=project, fields="all"), key=lambda t: t.id)
    assert [t.data["priority"] for t in tasks][:3] == [2.0] * 3  # imported first: the default order is by id
    assert all(t.data["why"].startswith("Audit: the judges accepted candidate_") for t in tasks[:3])
    assert all(t.data["why"].startswith("Judges disagree") and 0 < t.data["priority"] < 1 for t in tasks[3:])
    assert all("Why you see this set:" in t.data["brief"] for t in tasks)
    tabs = [v.data for v in client.views.list(project=project)]
    assert any(tab.get("title") == "By priority" and tab.get("ordering")[0] == "-tasks:data.priority" for tab in tabs)
    served = httpx.get(f"{conn.url}/api/projects/{project}/next", headers={"Authorization": f"Token {conn.token}"},
                       timeout=SLOW_S)
    assert served.status_code == 200 and served.json()["data"]["why"].startswith("Audit:")  # Label Studio's own queue
    # the model refitted after a collect reorders what is still open
    from mora.atomic import write_json_atomic
    from mora.review.reliability import ReliabilityModel, model_path

    cells = {f"{j}|{r['criterion']}|low": {"correct": 450.0, "seen": 500, "skill": 0.9}
             for j in ("llava-onevision", "qwen2-vl") for r in fresh}
    known = ReliabilityModel(cuts={"llava-onevision": 1.0, "qwen2-vl": 1.0}, people=0.95, decisions=500,
                             annotators=cells)
    write_json_atomic(model_path(root, dataset), {"model": known.to_dict()})
    again = push(conn, root, dataset)
    assert not again.pushed and again.reprioritized >= 3
    reordered = {t.data["set_id"]: t.data["priority"] for t in client.tasks.list(project=project, fields="all")}
    assert all(reordered[r["set_id"]] < 0.2 for r in fresh if not r["audit"])  # well-measured judges: little to learn
