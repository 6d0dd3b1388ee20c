"""Where reviewers work: a local Label Studio on 127.0.0.1, or an existing server by URL and token.

Label Studio runs from its own virtualenv (it and Prefect pin conflicting packages), with its data
under ``ROOT/_state/label-studio``. The first start creates a non-interactive admin with a random
password and API token, kept in a file only the owner can read; the token is never printed or logged.
Signup is closed, so only people the admin invites can review.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx

from mora.atomic import write_json_atomic

VENV_BIN = Path(".mora/label-studio/venv/bin/label-studio")  # `make review-env` installs it here
ADMIN = "admin@mora.local"


class ReviewServerError(RuntimeError):
    """One line: what is wrong with the review server and how to fix it."""


@dataclass(frozen=True)
class Connection:
    url: str
    token: str

    def __repr__(self) -> str:  # the token stays out of logs and tracebacks
        return f"Connection(url={self.url!r}, token=***)"


def server_dir(root: Path) -> Path:
    return Path(root) / "_state" / "label-studio"


def media_root(root: Path) -> Path:
    """Label Studio's local-files root: review media only (``ROOT/_state/_review-media``; no dataset name
    starts with ``_``), none of the state beside it (the credentials and the server's database are in
    ``ROOT/_state/label-studio``)."""
    return (Path(root) / "_state" / "_review-media").resolve()


def make_private(folder: Path) -> None:
    """Folders 0700 and files 0600 under ``folder``: the database holds the admin token in clear text."""
    if not folder.is_dir() or folder.is_symlink():
        return
    folder.chmod(0o700)
    for parent, dirs, files in os.walk(folder):
        for name in dirs + files:
            path = Path(parent) / name
            if not path.is_symlink():
                path.chmod(0o700 if path.is_dir() else 0o600)


def exposed(folder: Path) -> list[Path]:
    """Everything under ``folder`` (itself included) that a user other than its owner may read or enter."""
    paths = [folder] + [Path(p) / n for p, dirs, files in os.walk(folder) for n in dirs + files]
    return [p for p in paths if not p.is_symlink() and p.exists() and p.stat().st_mode & 0o077]


def check_private(folder: Path) -> None:
    """Tighten the state, then make sure nothing under it is open to other local users."""
    make_private(folder)
    left = exposed(folder)
    if left:
        raise ReviewServerError(f"{left[0]} is readable by other users (mode {left[0].stat().st_mode & 0o777:o}) "
                                f"and cannot be made private; fix its owner or run `chmod -R go-rwx {folder}`")


def _credentials(folder: Path) -> dict:
    path = folder / "credentials.json"
    if not path.exists():
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        creds = {"username": ADMIN, "password": secrets.token_urlsafe(18), "token": secrets.token_hex(20)}
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(creds, f)
    return json.loads(path.read_text())


def healthy(url: str, timeout: float = 1.0) -> bool:
    try:
        return httpx.get(f"{url}/health", timeout=timeout).status_code == 200
    except httpx.HTTPError:
        return False


def up(root: Path, port: int = 8090, binary: Path | None = None, wait_s: float = 300.0,
       waiting: Callable[[float], None] | None = None) -> Connection:
    """Start (or find running) the local server for this shard root; returns once it answers.
    ``waiting(seconds)`` is called while it starts (the first start migrates its database)."""
    folder = server_dir(root)
    state = folder / "server.json"
    if state.exists():
        running = json.loads(state.read_text())
        if healthy(running["url"]):
            if running.get("media_root") != str(media_root(root)):  # started by an older mora: no guard
                raise ReviewServerError(f"the Label Studio running at {running['url']} was started by an older mora "
                                        "and serves links planted among the review media; restart it: `mora review "
                                        f"down --root {root}`, then `mora review up --root {root}`")
            check_private(folder)
            return Connection(running["url"], _credentials(folder)["token"])
    repo_bin = Path(__file__).resolve().parents[2] / VENV_BIN
    binary = Path(binary or os.environ.get("MORA_LABEL_STUDIO_BIN") or (VENV_BIN if VENV_BIN.exists() else repo_bin))
    if not binary.exists():
        raise ReviewServerError(f"Label Studio is not installed at {binary}; run `make review-env` (its own "
                                "virtualenv) or set MORA_LABEL_STUDIO_BIN to a label-studio executable")
    creds = _credentials(folder)
    data = folder / "data"
    data.mkdir(parents=True, exist_ok=True, mode=0o700)
    check_private(folder)  # before the server reads the token from it
    media_root(root).mkdir(parents=True, exist_ok=True, mode=0o700)
    from mora.review.label_studio_site import SETTINGS, SITE

    env = {**os.environ,
           # Label Studio's settings plus mora's guard: a local file is served only if it is a regular file
           # reached without a link, checked at every request (mora/review/label_studio_site)
           "DJANGO_SETTINGS_MODULE": SETTINGS,
           "PYTHONPATH": os.pathsep.join(p for p in (str(SITE), os.environ.get("PYTHONPATH", "")) if p),
           "LABEL_STUDIO_BASE_DATA_DIR": str(data.resolve()), "LABEL_STUDIO_USERNAME": creds["username"],
           "LABEL_STUDIO_PASSWORD": creds["password"], "LABEL_STUDIO_USER_TOKEN": creds["token"],
           "LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN": "true", "LABEL_STUDIO_DISABLE_SIGNUP_WITHOUT_LINK": "true",
           "LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED": "true",
           "LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT": str(media_root(root)),
           "LATEST_VERSION_CHECK": "false", "COLLECT_ANALYTICS": "false", "SENTRY_DSN": "", "FRONTEND_SENTRY_DSN": ""}
    url = f"http://127.0.0.1:{port}"
    if healthy(url):
        raise ReviewServerError(f"something already answers at {url}; stop it or pass another --port")
    log_fd = os.open(folder / "server.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    with os.fdopen(log_fd, "ab") as log:
        proc = subprocess.Popen(  # umask 077: every file the server creates is its user's alone
            [str(binary), "start", "--internal-host", "127.0.0.1", "--port", str(port), "--no-browser",
             "--data-dir", str(data.resolve())],
            stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True, umask=0o077)
    write_json_atomic(state, {"url": url, "pid": proc.pid, "port": port, "media_root": str(media_root(root))})
    started = time.monotonic()
    while not healthy(url):
        if proc.poll() is not None or time.monotonic() > started + wait_s:
            down(root)
            raise ReviewServerError(f"Label Studio did not start at {url}; see {folder / 'server.log'}")
        if waiting:
            waiting(time.monotonic() - started)
        time.sleep(0.25)
    try:
        check_private(folder)  # what the server created while starting
    except ReviewServerError:
        down(root)
        raise
    return Connection(url, creds["token"])


def down(root: Path, port: int | None = None) -> bool:
    """Stop the local server started by ``up``; False when none was running (on ``port``, if given)."""
    state = server_dir(root) / "server.json"
    if not state.exists():
        return False
    running = json.loads(state.read_text())
    if port is not None and running.get("port") != port:
        raise ReviewServerError(f"the Label Studio of {root} runs on port {running.get('port')}, not {port}; "
                                f"nothing stopped (pass --port {running.get('port')})")
    pid = running["pid"]
    try:
        os.killpg(pid, signal.SIGTERM)
        for _ in range(100):
            try:
                if os.waitpid(pid, os.WNOHANG)[0]:  # our own child: reap it, or it lingers as a zombie
                    break
            except ChildProcessError:
                os.killpg(pid, 0)  # started by another process: wait until the group is gone
            time.sleep(0.1)
        else:
            os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    state.unlink(missing_ok=True)
    return True


def connect(root: Path | None = None, url: str | None = None, token: str | None = None) -> Connection:
    """Arguments, else $MORA_LABEL_STUDIO_URL with $MORA_LABEL_STUDIO_TOKEN (or the Prefect Secret block
    named by $MORA_LABEL_STUDIO_TOKEN_BLOCK), else the local server of ``root``."""
    url = url or os.environ.get("MORA_LABEL_STUDIO_URL")
    if url:
        token = token or os.environ.get("MORA_LABEL_STUDIO_TOKEN")
        block = os.environ.get("MORA_LABEL_STUDIO_TOKEN_BLOCK")
        if not token and block:
            from prefect.blocks.system import Secret

            token = Secret.load(block).get()
        if not token:
            raise ReviewServerError(f"no API token for {url}; set MORA_LABEL_STUDIO_TOKEN or name a Prefect "
                                    "Secret block in MORA_LABEL_STUDIO_TOKEN_BLOCK")
        return Connection(url.rstrip("/"), token)
    state = server_dir(root) / "server.json" if root else None
    if state is None or not state.exists():
        raise ReviewServerError("no review server: run `mora review up` or set MORA_LABEL_STUDIO_URL and "
                                "MORA_LABEL_STUDIO_TOKEN")
    return Connection(json.loads(state.read_text())["url"], _credentials(server_dir(root))["token"])
