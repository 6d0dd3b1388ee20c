"""prefect.yaml as its header says: a real `prefect server`, `prefect deploy --all` from the project
folder, a process worker. Nightly rounds advance; a self-train run waiting for reviewers is suspended
(its worker free) and review-sync resumes it; review-sync without a review server ends Completed."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from tests.conftest import EVERY_SET_REVIEWED, REPO, free_port

pytestmark = pytest.mark.slow
BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def deployed(tmp_path_factory, tiny_models):
    """The project as a user has it after `make round`, deployed to a fresh server with one worker."""
    project = tmp_path_factory.mktemp("project")
    for name in ("mora", "configs"):
        (project / name).symlink_to(REPO / name)
    shutil.copy(REPO / "prefect.yaml", project / "prefect.yaml")
    (project / ".mora" / "models").mkdir(parents=True)
    (project / ".mora" / "models" / "tiny").symlink_to(tiny_models)
    port = free_port()
    url = f"http://127.0.0.1:{port}/api"
    env = {**os.environ, "PREFECT_HOME": str(project / ".mora" / "prefect"), "PREFECT_API_URL": url,
           "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "PREFECT_LOGGING_LEVEL": "INFO"}
    logs = project / "logs"
    logs.mkdir()
    procs = [subprocess.Popen([BIN / "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port)],
                              cwd=project, env=env, stdout=open(logs / "server.log", "w"), stderr=subprocess.STDOUT)]
    try:
        deadline = time.monotonic() + 600  # a bound on the wait for the server, not a pace
        while not _healthy(url):
            assert time.monotonic() < deadline and procs[0].poll() is None, (logs / "server.log").read_text()
            time.sleep(1)
        for args in (["work-pool", "create", "mora", "--type", "process"], ["--no-prompt", "deploy", "--all"]):
            done = subprocess.run([BIN / "prefect", *args], cwd=project, env=env, capture_output=True, text=True)
            assert done.returncode == 0, done.stdout + done.stderr
        procs.append(subprocess.Popen([BIN / "prefect", "worker", "start", "--pool", "mora"], cwd=project, env=env,
                                      stdout=open(logs / "worker.log", "w"), stderr=subprocess.STDOUT))
        yield {"project": project, "env": env, "url": url, "logs": logs}
    finally:
        for proc in reversed(procs):
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()


def _healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/health", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def _api(deployed, method: str, path: str, **kwargs):
    for _ in range(10):  # a busy server's SQLite answers 503 for a moment: ask again, a bounded number of times
        response = httpx.request(method, f"{deployed['url']}{path}", timeout=30, **kwargs)
        if response.status_code != 503:
            break
        time.sleep(3)
    response.raise_for_status()
    return response.json()


def _run(deployed, name: str, parameters: dict) -> str:
    deployment = _api(deployed, "GET", f"/deployments/name/{name}")
    return _api(deployed, "POST", f"/deployments/{deployment['id']}/create_flow_run",
                json={"parameters": parameters})["id"]


def _wait_for(deployed, run_id: str, states: set[str], timeout_s: float = 420) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        run = _api(deployed, "GET", f"/flow_runs/{run_id}")
        if run["state"]["type"] in states:
            return run
        assert run["state"]["type"] not in {"FAILED", "CRASHED", "CANCELLED"}, (
            run["state"], (deployed["logs"] / "worker.log").read_text()[-4000:])
        time.sleep(2)
    worker = (deployed["logs"] / "worker.log").read_text()[-4000:]
    raise AssertionError(f"run {run_id} never reached {states}: {worker}")


def _logged(deployed, run_id: str, text: str, timeout_s: float = 300) -> bool:
    """Whether the run logged ``text``; its logs reach the server in batches, after the run's final state."""
    deadline = time.monotonic() + timeout_s
    while True:
        logs = _api(deployed, "POST", "/logs/filter", json={"logs": {"flow_run_id": {"any_": [run_id]}},
                                                             "limit": 200})
        if any(text in entry["message"] for entry in logs) or time.monotonic() > deadline:
            return any(text in entry["message"] for entry in logs)
        time.sleep(2)


def test_nightly_round_runs_twice_through_a_worker_and_advances(deployed):
    params = {"config_path": "configs/tiny.yaml", "overrides": {"iteration": "next", "prompts.count": "2"}}
    for _ in range(2):  # one night after the other
        _wait_for(deployed, _run(deployed, "dataset-round/nightly-round", params), {"COMPLETED"})
    rounds = sorted(p.parent.name for p in (deployed["project"] / "mora-data" / "_state" / "tiny" / "rounds")
                    .glob("*/complete.json"))
    assert [r.split("-")[1] for r in rounds] == ["it001", "it002"]


def test_self_train_suspends_for_reviewers_and_review_sync_resumes_it(deployed):
    project, dataset = deployed["project"], "loop"
    overrides = {"iteration": "next", "shards.dataset": dataset, "prompts.count": "4", "self_train.iterations": "1",
                 "self_train.review": "wait", "self_train.review_timeout_s": "3600", "training.max_steps": "2",
                 "training.checkpoint_every": "2"} | EVERY_SET_REVIEWED
    run_id = _run(deployed, "self-train/self-train", {"config_path": "configs/tiny.yaml", "overrides": overrides})
    suspended = _wait_for(deployed, run_id, {"PAUSED"})
    assert suspended["state"]["name"] == "Suspended"  # nothing holds a worker while people review
    wait = json.loads((project / "mora-data" / "_state" / dataset / "reviews" / "waits" / "iteration=1.json")
                      .read_text())
    assert wait["flow_run_id"] == run_id
    assert not list((project / "mora-data" / "_checkpoints").glob(f"{dataset}/iteration=1/*/step-*"))

    sync = _run(deployed, "collect-reviews/review-sync", {"root": "mora-data", "dataset": dataset})
    _wait_for(deployed, sync, {"COMPLETED"})  # before the deadline, with no review server: nothing resumed
    assert _logged(deployed, sync, "no review server")
    assert _api(deployed, "GET", f"/flow_runs/{run_id}")["state"]["type"] == "PAUSED"

    # the review deadline passes: moved to a moment ago in the wait's record, rather than slept out (a sync that
    # a busy machine starts late would otherwise find a short deadline already past and resume the run)
    waits = project / "mora-data" / "_state" / dataset / "reviews" / "waits" / "iteration=1.json"
    waits.write_text(json.dumps(wait | {"deadline": (datetime.now(UTC) - timedelta(seconds=1)).isoformat()}))
    sync = _run(deployed, "collect-reviews/review-sync", {"root": "mora-data", "dataset": dataset})
    _wait_for(deployed, sync, {"COMPLETED"})
    assert _logged(deployed, sync, f"resumed self-train run {run_id}")
    _wait_for(deployed, run_id, {"COMPLETED"})  # resumed: the round is found complete, and fine-tuning ran
    assert _logged(deployed, run_id, "review deadline passed; fine-tuning on what is decided")
    assert not (project / "mora-data" / "_state" / dataset / "reviews" / "waits" / "iteration=1.json").exists()
