"""The review server's state and media, against a real Label Studio on 127.0.0.1: private to its user,
no symbolic link ever served, and one bad review record never holding back the others."""

import json
import os
import shutil
import stat
from pathlib import Path
from urllib.parse import quote, unquote

import httpx
import pytest

from mora.config import load_config
from mora.flows.round import dataset_round
from mora.review import server
from mora.review.labeling import media_url
from mora.review.pending import failed_dir, records, reviews_dir, update_record
from mora.review.push import client_for, media_dir, push, remove_unsafe_media, write_media
from tests.conftest import EVERY_SET_REVIEWED, SLOW_S, start_label_studio, write_tiny_config
from tests.test_cli import mora

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def review(tmp_path_factory, tiny_models):
    """Three sets awaiting review and a Label Studio for their shard root (its data folder copied: modes as
    a copy leaves them, which the server tightens)."""
    config = write_tiny_config(tiny_models, tmp_path_factory.mktemp("safety"))
    overrides = {"prompts.count": "3", "generation.num_frames": "9", **EVERY_SET_REVIEWED}
    dataset_round(str(config), overrides)
    cfg = load_config(config, overrides)
    root = cfg.shards.root
    conn = start_label_studio(root, tmp_path_factory)
    yield {"root": root, "dataset": cfg.shards.dataset, "conn": conn, "port": int(conn.url.rsplit(":", 1)[1])}
    server.down(root)


def _all_pending(review) -> list[dict]:
    """Every record pending again and no task on the server: each test starts from the same place."""
    root, dataset, client = review["root"], review["dataset"], client_for(review["conn"])
    for project in client.projects.list():
        for task in client.tasks.list(project=project.id):
            client.tasks.delete(id=task.id)
    for record in records(root, dataset):
        update_record(root, dataset, record | {"status": "pending", "task_id": None})
    shutil.rmtree(media_dir(root, dataset), ignore_errors=True)
    return records(root, dataset)


def test_label_studio_state_is_private_to_its_user(review):
    folder = server.server_dir(review["root"])
    database = folder / "data" / "label_studio.sqlite3"
    assert database.exists()
    for path in [folder, *folder.rglob("*")]:
        if not path.is_symlink():
            mode = stat.S_IMODE(path.stat().st_mode)
            assert mode == (0o700 if path.is_dir() else 0o600), f"{path} has mode {mode:o}"
    pid = json.loads((folder / "server.json").read_text())["pid"]
    assert "Umask:\t0077" in Path(f"/proc/{pid}/status").read_text()  # what the server creates later, too
    database.chmod(0o644)  # loosened by hand (or by an older mora): `review up` tightens it again
    (folder / "data").chmod(0o755)
    server.up(review["root"], port=review["port"])
    assert server.exposed(folder) == []
    state = folder / "server.json"
    saved = state.read_text()
    state.write_text(json.dumps({k: v for k, v in json.loads(saved).items() if k != "media_root"}))
    with pytest.raises(server.ReviewServerError, match="started by an older mora"):  # one without the guard
        server.up(review["root"], port=review["port"])
    state.write_text(saved)


def test_links_in_the_media_folder_are_never_served(review):
    root, dataset, conn = review["root"], review["dataset"], review["conn"]
    first = _all_pending(review)[0]
    write_media(root, dataset, first)
    media = media_dir(root, dataset)
    credentials = server.server_dir(root) / "credentials.json"
    victim = media / first["set_id"].replace("/", "__") / "candidate_1.mp4"
    victim.unlink()
    victim.symlink_to(credentials)  # a candidate replaced by a link into _state
    (media / "passwd.mp4").symlink_to("/etc/passwd")  # and links beside the sets
    (media / "creds.mp4").symlink_to(credentials)
    result = push(conn, root, dataset)
    assert len(result.pushed) == 3 and len(result.removed) == 3
    assert all("only regular files are served" in line for line in result.removed)
    auth = {"Authorization": f"Token {conn.token}"}
    for name in ("passwd.mp4", "creds.mp4"):
        url = conn.url + "/data/local-files/?d=" + (media / name).relative_to(server.media_root(root)).as_posix()
        served = httpx.get(url, headers=auth, timeout=SLOW_S)
        assert served.status_code != 200 and b"root:" not in served.content and b"token" not in served.content
    task = next(t for t in client_for(conn).tasks.list(project=result.projects[1], fields="all")
                if t.data["set_id"] == first["set_id"])
    video = httpx.get(conn.url + task.data["video_1"], headers=auth, timeout=SLOW_S)
    assert video.status_code == 200 and video.content[4:8] == b"ftyp"  # the real candidate, written again
    assert victim.is_file() and not victim.is_symlink()
    assert not any(p.is_symlink() for p in media.rglob("*"))


def test_links_planted_while_label_studio_runs_are_never_served(review):
    """After the push nothing sweeps the media folder: a candidate swapped for a link to the admin
    credentials, links beside the sets, a linked folder and a second name (hard link) of the credentials
    are refused by the server at the request itself; the credentials lie outside what it serves."""
    root, dataset, conn = review["root"], review["dataset"], review["conn"]
    _all_pending(review)
    result = push(conn, root, dataset)
    media, served = media_dir(root, dataset), server.media_root(root)
    folder = server.server_dir(root)
    credentials = folder / "credentials.json"
    secrets_ = json.loads(credentials.read_text())
    assert not credentials.resolve().is_relative_to(served) and not (folder / "data").resolve().is_relative_to(served)
    task = next(iter(client_for(conn).tasks.list(project=result.projects[1], fields="all")))
    auth = {"Authorization": f"Token {conn.token}"}
    victim = served / unquote(task.data["video_1"].split("?d=", 1)[1])
    original = victim.read_bytes()
    assert httpx.get(conn.url + task.data["video_1"], headers=auth, timeout=SLOW_S).content == original
    victim.unlink()
    victim.symlink_to(credentials)  # a candidate swapped for a link while the server runs
    (media / "passwd.mp4").symlink_to("/etc/passwd")
    (media / "creds.mp4").symlink_to(credentials)
    (media / "state").symlink_to(folder, target_is_directory=True)
    os.link(credentials, media / "hard.mp4")
    os.mkfifo(media / "pipe.mp4")  # would hold a server thread for good if opened
    local = "/data/local-files/?d="
    urls = [task.data["video_1"], "/data/local-files/?d=../label-studio/credentials.json"] + [
        local + quote((media / name).relative_to(served).as_posix())
        for name in ("passwd.mp4", "creds.mp4", "state/credentials.json", "hard.mp4", "pipe.mp4")]
    for url in urls:
        answer = httpx.get(conn.url + url, headers=auth, timeout=30)
        assert answer.status_code != 200 and answer.status_code != 206, url
        assert secrets_["token"].encode() not in answer.content and secrets_["password"].encode() not in answer.content
        assert b"root:" not in answer.content, url
    victim.unlink()
    victim.write_bytes(original)  # a regular file again: served again
    answer = httpx.get(conn.url + task.data["video_1"], headers={**auth, "Range": "bytes=0-99"}, timeout=SLOW_S)
    assert answer.status_code == 206 and answer.content == original[:100]
    for name in ("passwd.mp4", "creds.mp4", "state", "hard.mp4", "pipe.mp4"):
        (media / name).unlink()


def test_the_guard_opens_only_regular_files_reached_without_links(tmp_path):
    from mora.review.label_studio_site.mora_media_guard import open_served

    (tmp_path / "media" / "set").mkdir(parents=True)
    (tmp_path / "media" / "set" / "candidate_0.mp4").write_bytes(b"mp4")
    (tmp_path / "secret").write_text("token")
    (tmp_path / "media" / "link.mp4").symlink_to(tmp_path / "secret")
    (tmp_path / "media" / "dir").symlink_to(tmp_path / "media" / "set", target_is_directory=True)
    os.link(tmp_path / "secret", tmp_path / "media" / "hard.mp4")
    os.mkfifo(tmp_path / "media" / "pipe.mp4")
    fd = open_served(str(tmp_path), "media/set/candidate_0.mp4")
    assert fd is not None and os.read(fd, 8) == b"mp4"
    os.close(fd)
    for refused in ("media/link.mp4", "media/dir/candidate_0.mp4", "media/hard.mp4", "media/pipe.mp4", "media/set",
                    "../secret", "media/../../secret", "", "media/missing.mp4"):
        assert open_served(str(tmp_path), refused) is None, refused


def test_media_urls_refuse_links_and_paths_outside_the_media_folder(tmp_path):
    state = tmp_path / "_state"
    media = state / "tiny" / "reviews" / "media"
    (media / "set").mkdir(parents=True)
    (media / "set" / "candidate_0.mp4").write_bytes(b"mp4")
    assert media_url(media / "set" / "candidate_0.mp4", state, media) == \
        "/data/local-files/?d=tiny/reviews/media/set/candidate_0.mp4"
    (state / "label-studio").mkdir()
    (state / "label-studio" / "credentials.json").write_text("{}")
    with pytest.raises(ValueError, match="outside the media folder"):  # under _state, but not media
        media_url(state / "label-studio" / "credentials.json", state, media)
    (media / "set" / "candidate_1.mp4").symlink_to(state / "label-studio" / "credentials.json")
    (media / "set" / "candidate_2.mp4").symlink_to("/etc/passwd")
    for name in ("candidate_1.mp4", "candidate_2.mp4"):
        with pytest.raises(ValueError, match="symbolic link"):
            media_url(media / "set" / name, state, media)
    os.mkfifo(media / "set" / "pipe.mp4")
    assert len(remove_unsafe_media(media)) == 3
    assert sorted(p.name for p in (media / "set").iterdir()) == ["candidate_0.mp4"]


def test_one_bad_record_is_set_aside_and_the_rest_are_pushed(review):
    root, dataset = review["root"], review["dataset"]
    missing, linked, good = _all_pending(review)
    update_record(root, dataset, missing | {"shards": [str(Path(missing["shards"][0]).with_name("gone.parquet"))]})
    link = Path(linked["shards"][0]).with_name("linked.parquet")
    link.symlink_to(linked["shards"][0])
    update_record(root, dataset, linked | {"shards": [str(link)]})
    (reviews_dir(root, dataset) / "garbage.json").write_bytes(b"\x00{not json")
    out = mora("review", "push", "--root", str(root), "--dataset", dataset, env={"MORA_LABEL_STUDIO_URL": ""})
    assert out.returncode == 0, out.stderr[-2000:]
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert len(lines) == 3 and all(line.startswith("set aside:") for line in lines), out.stderr
    assert "missing" in out.stderr and "symbolic link" in out.stderr and "JSONDecodeError" in out.stderr
    assert [r["set_id"] for r in records(root, dataset)] == [good["set_id"]]
    assert records(root, dataset)[0]["status"] == "pushed" and records(root, dataset)[0]["task_id"]
    aside = {p.name: json.loads(p.read_text()) for p in failed_dir(root, dataset).glob("*.json")}
    assert len(aside) == 3 and all(a["reason"] for a in aside.values())
    assert aside["garbage.json"]["record"].startswith("\x00{not json")
    link.unlink()
