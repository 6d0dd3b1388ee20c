"""Pending review sets become Label Studio tasks, exactly once.

The server is the record of what was pushed: every task carries its ``set_id``, and a push first
lists the project's tasks. A crash between creating tasks and recording them locally, or a second
push, finds the sets already there and only records them, so nothing is duplicated or lost. A server
that is down fails the push with one line; the records stay pending and the next push sends them.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from mora.atomic import write_atomic
from mora.datasets.shards import locate_shard
from mora.review.clips import review_clip, review_plan
from mora.review.instructions import project_instructions
from mora.review.labeling import labeling_config, media_url, task_payload
from mora.review.ordering import priority, why
from mora.review.pending import read_records, record_path, set_aside, update_record
from mora.review.reliability import load_model
from mora.review.server import Connection, ReviewServerError, media_root


@dataclass
class PushResult:
    pushed: list[str] = field(default_factory=list)  # new tasks
    found: list[str] = field(default_factory=list)  # on the server already, now recorded
    projects: dict[int, int] = field(default_factory=dict)  # iteration -> project id
    failed: list[tuple[str, str]] = field(default_factory=list)  # set aside under reviews/failed/, with why
    removed: list[str] = field(default_factory=list)  # unsafe entries taken out of the media folder
    reprioritized: int = 0  # open tasks whose priority the latest reliability model changed


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


def ensure_project(client, root: Path, dataset: str, iteration: int, preannotate: bool = False,
                   rankings: bool = False) -> tuple[int, bool]:
    """The iteration's project with its labeling config and media storage, created once, and whether it
    pre-labels. Its settings (pre-labelling with the judges' pick, asking for full rankings) are chosen at
    creation; later pushes leave them as the team set them in Label Studio, and follow its pre-labelling."""
    title = project_title(dataset, iteration)
    found = [p for p in server_call("listing projects", client.projects.list, title=title) if p.title == title]
    if not found:
        found = [server_call("creating the project", client.projects.create, title=title,
                             description=f"Candidate sets of {dataset} iteration {iteration} the judges could not "
                                         "settle: pick the best candidate, or reject all.",
                             label_config=labeling_config(rankings=rankings), show_skip_button=True,
                             show_collab_predictions=preannotate, expert_instruction=project_instructions(),
                             show_instruction=False, maximum_annotations=1)]
    project, prelabels = found[0].id, bool(found[0].show_collab_predictions)
    if not any((v.data or {}).get("title") == PRIORITY_TAB
               for v in server_call("listing tabs", client.views.list, project=project)):
        server_call("adding the priority tab", client.views.create, project=project,
                    data={"title": PRIORITY_TAB, "ordering": ["-tasks:data.priority", "tasks:id"]})
    media_root(root).mkdir(parents=True, exist_ok=True, mode=0o700)
    media = media_dir(root, dataset)
    media.mkdir(parents=True, exist_ok=True, mode=0o700)
    storages = server_call("listing storages", client.import_storage.local.list, project=project)
    if not any(Path(s.path or "").resolve() == media.resolve() for s in storages):
        server_call("adding the media storage", client.import_storage.local.create, project=project,
                    path=str(media.resolve()), title="mora candidate videos", use_blob_urls=False)
    return project, prelabels


PRIORITY_TAB = "By priority"  # Data Manager tab: "Label All Tasks" from it follows the current priorities


def media_dir(root: Path, dataset: str) -> Path:
    """The review copies of a dataset's sets; their URLs are relative to ``media_root``."""
    return media_root(root) / dataset / "reviews" / "media"


def move_legacy_media(root: Path, dataset: str) -> None:
    """Review copies written before Label Studio's root held media only (``ROOT/_state/DATASET/reviews/media``)
    move under ``media_root`` to the same relative path, so tasks pushed then keep their URLs."""
    old, new = Path(root) / "_state" / dataset / "reviews" / "media", media_dir(root, dataset)
    if old.is_symlink() or not old.is_dir():
        return
    new.mkdir(parents=True, exist_ok=True, mode=0o700)
    for folder in old.iterdir():
        if not (new / folder.name).exists() and not folder.is_symlink():
            os.replace(folder, new / folder.name)
    shutil.rmtree(old)


def remove_unsafe_media(folder: Path) -> list[str]:
    """Symbolic links and anything but regular files and folders are taken out of the served folder.

    Label Studio's local-files view follows links: a link placed here would serve any file the server
    can read (credentials, /etc/passwd) to a reviewer. Returns one line per entry removed.
    """
    if folder.is_symlink():
        folder.unlink()
        return [f"removed {folder}: the media folder itself was a symbolic link"]
    removed = []
    for path in sorted(folder.rglob("*")) if folder.is_dir() else []:
        if path.is_symlink() or not (path.is_file() or path.is_dir()):
            target = os.readlink(path) if path.is_symlink() else "not a regular file"
            path.unlink()
            removed.append(f"removed {path} ({target}) from the review media: only regular files are served")
    return removed


def check_shards(root: Path, dataset: str, record: dict) -> list[Path]:
    """The record's shards where they lie now (``locate_shard``: inside the dataset's folder by
    construction), each a regular file, or the reason why not."""
    out = []
    for shard in record["shards"]:
        path = locate_shard(root, dataset, shard)
        if path.is_symlink():
            raise ValueError(f"shard {shard} is a symbolic link")
        if not path.is_file():
            raise ValueError(f"shard {shard} is missing")
        out.append(path)
    return out


def write_media(root: Path, dataset: str, record: dict) -> list[str]:
    """The set's candidate videos as regular files in the media folder, from its shard rows."""
    media = media_dir(root, dataset)
    folder = media / record["set_id"].replace("/", "__")
    urls = []
    for shard in check_shards(root, dataset, record):
        table = pq.read_table(shard, columns=["set_id", "candidate_index", "video"],
                              filters=[("set_id", "=", record["set_id"])])
        for row in sorted(table.to_pylist(), key=lambda r: r["candidate_index"]):
            path = folder / f"candidate_{row['candidate_index']}.mp4"
            if path.is_symlink() or (path.exists() and not path.is_file()):
                path.unlink()  # never serve what a link points to: the video is written in its place
            if not path.exists():
                write_atomic(path, lambda tmp, video=row["video"]: tmp.write_bytes(review_clip(video)))
            urls.append(media_url(path, media_root(root), media))  # refuses what escapes the media folder
    if not urls:
        raise ValueError(f"no rows of set {record['set_id']} in its shards")
    return urls


def tasks_by_set(client, project: int) -> dict[str, int]:
    tasks = server_call("listing tasks", client.tasks.list, project=project, fields="all")
    return {t.data["set_id"]: t.id for t in tasks if "set_id" in (t.data or {})}


def payload(root: Path, dataset: str, record: dict, rank: float | None = None, preannotate: bool = False) -> dict:
    """The set's task, with its review copies written, the clips' frame rate and repeats, why people see it
    and its ``rank`` in the queue; the judges' pick as a prediction only for a project that pre-labels."""
    urls = write_media(root, dataset, record)
    first = next(row for shard in check_shards(root, dataset, record) for row in pq.read_table(
        shard, columns=["set_id", "fps", "num_frames", "width", "height"],
        filters=[("set_id", "=", record["set_id"])]).slice(0, 1).to_pylist())
    _, repeats = review_plan(first["width"], first["height"], first["num_frames"], first["fps"])
    return task_payload(record, urls, fps=first["fps"], repeats=repeats, why=why(record), priority=rank,
                        preannotate=preannotate)


def reprioritize(client, project: int, ranks: dict[str, float]) -> int:
    """Tasks still open take the priorities the model now gives their sets; returns how many changed."""
    changed = 0
    for task in server_call("listing tasks", client.tasks.list, project=project, fields="all"):
        data = task.data or {}
        rank = ranks.get(data.get("set_id"))
        if rank is None or task.is_labeled or data.get("priority") == rank:
            continue
        server_call("updating a task's priority", client.tasks.update, id=str(task.id), data=data | {"priority": rank})
        changed += 1
    return changed


def push(conn: Connection, root: Path, dataset: str, preannotate: bool = False, rankings: bool = False) -> PushResult:
    """Every pending set that can be shown becomes a task, most informative first (``mora.review.ordering``);
    a record that cannot is set aside with its reason (``reviews/failed/``), and the others are pushed all
    the same. Open tasks of earlier pushes take the priorities the latest model gives them."""
    client, result = client_for(conn), PushResult()
    move_legacy_media(root, dataset)
    model = load_model(root, dataset)
    result.removed = remove_unsafe_media(media_dir(root, dataset))
    readable, unreadable = read_records(root, dataset)
    for path, reason in unreadable:
        set_aside(root, dataset, path, reason)
        result.failed.append((path.stem, reason))
    ranks = {r["set_id"]: priority(r, model) for r in readable}
    todo = sorted((r for r in readable if r.get("status") == "pending"), key=lambda r: -ranks[r["set_id"]])
    for iteration in sorted({r["iteration"] for r in readable if r.get("status") == "pushed"} - {
            r["iteration"] for r in todo}):  # tasks out already: their project serves today's media folder, and
        # its open tasks take the new priorities
        project, _ = ensure_project(client, root, dataset, iteration, preannotate, rankings)
        result.projects[iteration] = project
        result.reprioritized += reprioritize(client, project, ranks)
    for iteration in sorted({r["iteration"] for r in todo}):
        project, prelabels = ensure_project(client, root, dataset, iteration, preannotate, rankings)
        result.projects[iteration] = project
        known = tasks_by_set(client, project)
        batch, payloads = [], []
        for record in (r for r in todo if r["iteration"] == iteration):
            if record["set_id"] in known:
                batch.append(record)
                continue
            try:
                payloads.append(payload(root, dataset, record, ranks[record["set_id"]], prelabels))
            except (OSError, ValueError, KeyError, TypeError, StopIteration, pa.ArrowException) as exc:
                reason = f"{type(exc).__name__}: {' '.join(str(exc).split())[:200]}"
                set_aside(root, dataset, record_path(root, dataset, record["set_id"]), reason)
                result.failed.append((record["set_id"], reason))
                continue
            batch.append(record)
        result.reprioritized += reprioritize(client, project, ranks)
        if payloads:  # in priority order: Label Studio's default (sequential) order is the import order
            server_call("importing tasks", client.projects.import_tasks, id=project, request=payloads,
                        return_task_ids=True)
            known = tasks_by_set(client, project)
        sent = {p["data"]["set_id"] for p in payloads}
        for record in batch:
            (result.pushed if record["set_id"] in sent else result.found).append(record["set_id"])
            update_record(root, dataset, record | {"status": "pushed", "project_id": project,
                                                   "task_id": known[record["set_id"]]})
    return result
