"""Pending review sets become Label Studio tasks, exactly once.

The server is the record of what was pushed: every task carries its ``set_id``, and a push first
lists the project's tasks. A crash between creating tasks and recording them locally, or a second
push, finds the sets already there and only records them, so nothing is duplicated or lost. A server
that is down fails the push with one line; the records stay pending and the next push sends them.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow.parquet as pq

from mora.datasets.shards import locate_shard
from mora.review.labeling import labeling_config, media_url, task_payload
from mora.review.pending import records, update_record
from mora.review.server import Connection, ReviewServerError, media_root


@dataclass
class PushResult:
    pushed: list[str] = field(default_factory=list)  # new tasks
    found: list[str] = field(default_factory=list)  # on the server already, now recorded
    projects: dict[int, int] = field(default_factory=dict)  # iteration -> project id


def client_for(conn: Connection):
    from label_studio_sdk import LabelStudio

    return LabelStudio(base_url=conn.url, api_key=conn.token, timeout=30)


def server_call(what: str, fn, *args, **kwargs):
    """A Label Studio call whose failure is one line naming the call, never a library traceback."""
    import httpx
    from label_studio_sdk.core.api_error import ApiError

    try:
        return fn(*args, **kwargs)
    except httpx.TransportError as exc:
        raise ReviewServerError(f"review server unreachable during {what} ({type(exc).__name__}); start it with "
                                "`mora review up` and run the command again: nothing was lost") from None
    except ApiError as exc:
        raise ReviewServerError(f"review server refused {what} (HTTP {exc.status_code}): "
                                f"{str(exc.body)[:160]}") from None


def project_title(dataset: str, iteration: int) -> str:
    return f"mora {dataset} iteration {iteration}"


def ensure_project(client, root: Path, dataset: str, iteration: int) -> int:
    """The iteration's project with its labeling config and media storage; created once."""
    title = project_title(dataset, iteration)
    found = [p for p in server_call("listing projects", client.projects.list, title=title) if p.title == title]
    if found:
        project = found[0].id
    else:
        project = server_call("creating the project", client.projects.create, title=title,
                              description=f"Candidate sets of {dataset} iteration {iteration} the judges could not "
                                          "settle: pick the best candidate, or reject all.",
                              label_config=labeling_config(), show_skip_button=False, maximum_annotations=1).id
    media = media_dir(root, dataset)
    media.mkdir(parents=True, exist_ok=True)
    storages = server_call("listing storages", client.import_storage.local.list, project=project)
    if not any(Path(s.path or "").resolve() == media.resolve() for s in storages):
        server_call("adding the media storage", client.import_storage.local.create, project=project,
                    path=str(media.resolve()), title="mora candidate videos", use_blob_urls=False)
    return project


def media_dir(root: Path, dataset: str) -> Path:
    return media_root(root) / dataset / "reviews" / "media"


def write_media(root: Path, dataset: str, record: dict) -> list[str]:
    """The set's candidate videos as files under the media root, from its shard rows."""
    folder = media_dir(root, dataset) / record["set_id"].replace("/", "__")
    base = media_root(root)
    urls = []
    for shard in record["shards"]:
        table = pq.read_table(locate_shard(root, dataset, shard), columns=["set_id", "candidate_index", "video"],
                              filters=[("set_id", "=", record["set_id"])])
        for row in sorted(table.to_pylist(), key=lambda r: r["candidate_index"]):
            path = folder / f"candidate_{row['candidate_index']}.mp4"
            url = media_url(path, base)  # refuses a path that escapes the media root
            if not path.exists():
                folder.mkdir(parents=True, exist_ok=True)
                tmp = path.with_suffix(".tmp")
                tmp.write_bytes(row["video"])
                shutil.move(tmp, path)
            urls.append(url)
    return urls


def tasks_by_set(client, project: int) -> dict[str, int]:
    tasks = server_call("listing tasks", client.tasks.list, project=project, fields="all")
    return {t.data["set_id"]: t.id for t in tasks if "set_id" in (t.data or {})}


def push(conn: Connection, root: Path, dataset: str) -> PushResult:
    client, result = client_for(conn), PushResult()
    todo = records(root, dataset, "pending")
    for iteration in sorted({r["iteration"] for r in todo}):
        project = ensure_project(client, root, dataset, iteration)
        result.projects[iteration] = project
        batch = [r for r in todo if r["iteration"] == iteration]
        known = tasks_by_set(client, project)
        new = [r for r in batch if r["set_id"] not in known]
        if new:
            payloads = [task_payload(r, write_media(root, dataset, r)) for r in new]
            server_call("importing tasks", client.projects.import_tasks, id=project, request=payloads,
                        return_task_ids=True)
            known = tasks_by_set(client, project)
        for record in batch:
            (result.pushed if record in new else result.found).append(record["set_id"])
            update_record(root, dataset, record | {"status": "pushed", "project_id": project,
                                                   "task_id": known[record["set_id"]]})
    return result
