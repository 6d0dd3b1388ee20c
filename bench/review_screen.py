"""A scripted reviewer in headless Chromium: actions and seconds per task on the review screen, in the
label stream (as an invited reviewer works) and opened from the Data Manager (as the project owner does:
a click on a row of the table, the task beside it in a narrower column).

The reviewer's job per task is the same on any screen: get all four candidates playing, watch each
one through once, choose the second candidate, give a reason, submit. It uses the keyboard where
that works (keys, Ctrl+Enter) and checks the screen after every action, so it pays for what the
screen makes it do: a play button per player when they do not play together, a scroll when the
choices are below the fold, a second key press when a pre-selected pick toggles off, an "Add" press
when the reason box needs one. Per task it also counts overlaps (player controls drawn over one
another or over the choices) and whether Skip is offered. Runs on a tiny round (3 sets per view, 9
frames at 8 fps) with a local Label Studio, as the admin; run it from an older checkout (MORA_REPO) to
measure the screen before a change. Prints one table; actions = clicks + key presses + scrolls (typing
the reason not counted).
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]
REPO = Path(os.environ.get("MORA_REPO", HERE))
sys.path.insert(0, str(REPO))
sys.path.insert(1, str(HERE))

FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", "--no-first-run", "--autoplay-policy=no-user-gesture-required"]
REASON = "[placeholder='Why? (optional)']"  # the reason box, a textarea or a one-line input
VISIBLE = "[...document.querySelectorAll('.lsf-choice')].filter(c => c.offsetParent)"


def in_view(page, selector: str) -> bool:
    box = page.locator(selector).first.bounding_box()
    return bool(box) and box["y"] >= 0 and box["y"] + box["height"] <= 900


OVERLAPS = """(() => {
  const boxes = sel => [...document.querySelectorAll(sel)].filter(e => e.offsetParent)
    .map(e => e.getBoundingClientRect());
  const meet = (a, b) => a.left < b.right - 1 && b.left < a.right - 1 && a.top < b.bottom - 1 && b.top < a.bottom - 1;
  const controls = boxes("[data-testid^='playback-button'], .lsf-timeline-controls__time-section, .lsf-frames-control");
  const choices = boxes(".lsf-choice label");
  let n = 0;
  controls.forEach((a, i) => controls.slice(i + 1).forEach(b => { n += meet(a, b); }));
  choices.forEach(c => controls.concat(boxes(".lsf-seeker")).forEach(b => { n += meet(c, b); }));
  return n;
})()"""


def review_one(page, client, task_ids: list[int], done: int) -> dict:
    """One task as the scripted reviewer does it; returns when the server holds ``done + 1`` annotations."""
    actions = {"clicks": 0, "keys": 0, "scrolls": 0}
    page.wait_for_function("document.querySelectorAll('video').length === 4 && "
                           "[...document.querySelectorAll('video')].every(v => v.readyState >= 2)")
    page.wait_for_function("document.querySelectorAll('.lsf-seeker').length === 4")  # the players' controls
    opened = time.monotonic()
    preselected = any(page.evaluate(f"{VISIBLE}.map(c => c.querySelector('input').checked)"))
    overlaps = page.evaluate(OVERLAPS)
    skip = page.get_by_role("button", name="Skip").count() > 0
    plays = page.locator("[data-testid='playback-button:play']")
    for i in range(4):  # press play until all four play
        if all(not p for p in page.evaluate("[...document.querySelectorAll('video')].map(v => v.paused)")):
            break
        button = plays.nth(i) if plays.count() > i else plays.first
        if not button.is_visible() or button.bounding_box()["y"] + 30 > 900:
            button.scroll_into_view_if_needed()
            actions["scrolls"] += 1
        button.click()
        actions["clicks"] += 1
    clip = page.evaluate("document.querySelector('video').duration") / max(1, int(page.evaluate(
        "(document.body.innerText.match(/repeat (\\d+)x/) || [0, 1])[1]")))
    page.wait_for_function(f"[...document.querySelectorAll('video')].every(v => v.currentTime >= {clip} || v.ended)",
                           timeout=60_000)  # each candidate seen through once
    if not in_view(page, REASON):
        page.locator(REASON).first.scroll_into_view_if_needed()
        actions["scrolls"] += 1
    page.locator(REASON).first.click()
    actions["clicks"] += 1
    page.keyboard.type("smoothest motion")
    if page.get_by_role("button", name="Add").count():  # a reason box that keeps text only once added
        page.keyboard.press("Shift+Enter")
        actions["keys"] += 1
    page.mouse.click(700, 60)  # out of the text box (the prompt line)
    actions["clicks"] += 1
    for _ in range(3):  # key 2 until the second candidate is the one selected
        if page.evaluate(f"{VISIBLE}.map(c => c.querySelector('input').checked)")[1:2] == [True]:
            break
        page.keyboard.press("2")
        actions["keys"] += 1
    page.keyboard.press("Control+Enter")
    actions["keys"] += 1
    deadline = time.monotonic() + 120  # a bound on waiting for the submit
    while time.monotonic() < deadline and sum(len(client.annotations.list(id=t)) for t in task_ids) <= done:
        time.sleep(0.1)
    return actions | {"seconds": time.monotonic() - opened, "preselected": preselected, "overlaps": overlaps,
                      "skip": skip}


def reviewed(browser, conn, creds: dict, client, project: int, view: str) -> list[dict]:
    """The project's three tasks reviewed in one view, as the admin."""
    task_ids = [t.id for t in client.tasks.list(project=project)]
    page = browser.new_page(viewport={"width": 1440, "height": 900})
    page.set_default_timeout(120_000)
    page.goto(f"{conn.url}/user/login/")
    page.fill("input[name=email]", creds["username"])
    page.fill("input[name=password]", creds["password"])
    page.click("button[type=submit]")
    page.wait_for_url(lambda url: "/user/login" not in url)
    rows = []
    if view == "stream":
        page.goto(f"{conn.url}/projects/{project}/data?labeling=1")
    for done in range(len(task_ids)):
        if view == "data-manager":  # back to the table, a click on the next row
            page.goto(f"{conn.url}/projects/{project}/data")
            page.locator("[class*=row-wrapper]").nth(done).click()
        rows.append(review_one(page, client, task_ids, done) | {"view": view})
    page.close()
    return rows


def main() -> None:
    from mora.cli_env import prefect_defaults

    prefect_defaults(tempfile.mkdtemp(prefix="mora-bench-prefect-"))  # before Prefect is imported
    from playwright.sync_api import sync_playwright

    from mora.config import load_config
    from mora.flows.round import dataset_round
    from mora.review import server
    from mora.review.push import client_for, push
    from mora.stopping import also_stop, stop_on_sigterm
    from tests.conftest import free_port, write_tiny_config

    work = Path(tempfile.mkdtemp(prefix="mora-bench-review-"))
    config = write_tiny_config(HERE / ".mora" / "models" / "tiny", work)
    # two orders per judge keep the tiny judges disagreeing, so all three sets go to review
    overrides = {"prompts.count": "3", "generation.num_frames": "9", "judges.0.orders": "2", "judges.1.orders": "2"}
    views = {1: "stream", 2: "data-manager"}  # one iteration (one project) per view
    for iteration in views:
        dataset_round(str(config), overrides | {"iteration": str(iteration)})
    root = load_config(config, overrides).shards.root
    cached = HERE / ".mora" / "cache" / "label-studio"
    if (cached / "credentials.json").exists():
        shutil.copytree(cached, server.server_dir(root))
    conn = server.up(root, port=free_port(), wait_s=600)
    also_stop(lambda: server.down(root))  # killed: no Label Studio left behind
    stop_on_sigterm(lambda: f"stopped: review_screen received SIGTERM; its Label Studio is down, {work} kept")
    try:
        projects = push(conn, root, "tiny").projects
        client = client_for(conn)
        creds = json.loads((server.server_dir(root) / "credentials.json").read_text())
        rows = []
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=shutil.which("chromium") or "/usr/bin/chromium", args=FLAGS)
            for iteration, view in views.items():
                rows += reviewed(browser, conn, creds, client, projects[iteration], view)
            browser.close()
    finally:
        server.down(root)
        shutil.rmtree(work, ignore_errors=True)
    print(f"{'view':<12} {'task':>4} {'clicks':>6} {'keys':>4} {'scrolls':>7} {'actions':>7} {'seconds':>7} "
          f"{'overlaps':>8} preselected skip")
    for i, r in enumerate(rows):
        total = r["clicks"] + r["keys"] + r["scrolls"]
        print(f"{r['view']:<12} {i % 3:>4} {r['clicks']:>6} {r['keys']:>4} {r['scrolls']:>7} {total:>7} "
              f"{r['seconds']:>7.1f} {r['overlaps']:>8} {r['preselected']!s:<11} {r['skip']}")
    mean = statistics.mean
    for view in views.values():
        mine = [r for r in rows if r["view"] == view]
        print(f"{view}: mean actions={mean(r['clicks'] + r['keys'] + r['scrolls'] for r in mine):.1f} "
              f"seconds={mean(r['seconds'] for r in mine):.1f} overlaps={mean(r['overlaps'] for r in mine):.1f}")
    print(f"(code: {REPO})")


if __name__ == "__main__":
    main()
