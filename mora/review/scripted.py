"""A scripted reviewer: a reviewer's part in Label Studio, played by a program of known reliability.

It works as a person does: it signs in with its own account (one that ``mora review add-reviewer``
made), gets its own API token, opens the tasks that await an answer, watches the candidates' review
copies through Label Studio's local-files URLs, and submits one annotation per task under its own
name. Its taste is a property of the pixels (``mora.evaluation.properties``): with probability
``reliability`` it picks the candidate with the most (or least) of it, otherwise one at random. So
``review: wait`` runs unattended, and a loop's use of people can be measured against a known truth.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import httpx
import numpy as np

from mora.evaluation.properties import preference
from mora.media import decode
from mora.review.labeling import CHOICE, FIRST_VIDEO, choice_name
from mora.review.push import server_call
from mora.review.server import ReviewServerError


def candidates_key(clips: list[np.ndarray]) -> int:
    """The same candidates, the same answer, in any run: not the task id, which depends on what the server
    held before and on the order sets were pushed in (two runs of one benchmark arm drew different answers)."""
    digest = hashlib.sha256()
    for clip in clips:
        digest.update(np.ascontiguousarray(clip).tobytes())
    return int.from_bytes(digest.digest()[:8], "big")


@dataclass(frozen=True)
class Taste:
    """What the reviewer prefers, and how reliably it says so."""

    property: str = "brightness"
    prefer: str = "more"  # more or less of the property
    reliability: float = 1.0  # probability of naming the preferred candidate; otherwise a random one

    def __post_init__(self) -> None:
        if not 0.0 <= self.reliability <= 1.0:
            raise ReviewServerError(f"reliability must lie in [0, 1], got {self.reliability}")
        preference(self.property, self.prefer)  # one line for an unknown property or direction

    def best(self, clips: list[np.ndarray]) -> int:
        """The candidate with the most (or least) of the property."""
        score = preference(self.property, self.prefer)
        return int(np.argmax([score(c) for c in clips]))

    def pick(self, clips: list[np.ndarray], rng: np.random.Generator) -> int:
        """The candidate this reviewer names: the best with probability ``reliability``, else any one."""
        if rng.random() < self.reliability:
            return self.best(clips)
        return int(rng.integers(len(clips)))


@dataclass
class Answer:
    task_id: int
    project_id: int
    choice: int
    preferred: int  # the candidate the taste prefers: choice == preferred unless the reviewer erred


@dataclass
class ScriptedReviewer:
    """Signed in as ``email``; ``answer_pending`` answers what awaits it, ``running`` does so in a thread."""

    url: str
    email: str
    token: str
    session: httpx.Client
    taste: Taste
    seed: int = 0
    user_id: int | None = None
    answers: list[Answer] = field(default_factory=list)

    @classmethod
    def sign_in(cls, url: str, email: str, password: str, taste: Taste, seed: int = 0) -> ScriptedReviewer:
        """Log in through Label Studio's login form, as the person would, and take the account's API token."""
        url = url.rstrip("/")
        session = httpx.Client(base_url=url, follow_redirects=True, timeout=30)
        try:
            form = session.get("/user/login/")
            session.post(str(form.url), data={"email": email, "password": password,
                                              "csrfmiddlewaretoken": session.cookies.get("csrftoken", "")},
                         headers={"Referer": str(form.url)})
            token = _account_token(session)
        except httpx.TransportError as exc:
            session.close()
            raise ReviewServerError(f"review server unreachable at {url} ({type(exc).__name__}); start it with "
                                    "`mora review up`") from None
        reviewer = cls(url=url, email=email, token=token, session=session, taste=taste, seed=seed)
        me = server_call("reading the reviewer's account", reviewer.client.users.whoami)
        if (me.email or "").lower() != email.lower():
            raise ReviewServerError(f"signed in as {me.email}, not {email}")
        reviewer.user_id = me.id
        return reviewer

    @property
    def client(self):
        from label_studio_sdk import LabelStudio

        return LabelStudio(base_url=self.url, api_key=self.token, timeout=30)

    def _clips(self, data: dict) -> list[np.ndarray]:
        """The task's candidate videos, fetched with this reviewer's session (local files need a login)."""
        clips, i = [], 0
        while f"video_{i}" in data:
            got = self.session.get(data[f"video_{i}"])
            if got.status_code != 200:
                raise ReviewServerError(f"review server refused candidate video {i} (HTTP {got.status_code})")
            clips.append(decode(got.content)[0])
            i += 1
        return clips

    def pending(self, project_ids: list[int]) -> Iterator[tuple[int, dict]]:
        """``(project, task)`` for every task of these projects that nobody has answered yet."""
        client = self.client
        for project in project_ids:
            for task in server_call("listing tasks", client.tasks.list, project=project, fields="all"):
                done = task.total_annotations or 0
                if not done and "video_0" in (task.data or {}):
                    yield project, {"id": task.id, "data": task.data}

    def answer_pending(self, project_ids: list[int] | None = None,
                       projects: Callable[[str], bool] | None = None) -> list[Answer]:
        """Answer every unanswered task of ``project_ids`` (or of the projects whose title ``projects``
        accepts; default every project this account sees); the answers given now."""
        client = self.client
        if project_ids is None:
            project_ids = [p.id for p in server_call("listing projects", client.projects.list)
                           if projects is None or projects(p.title or "")]
        given = []
        for project, task in self.pending(project_ids):
            started = time.perf_counter()
            clips = self._clips(task["data"])
            rng = np.random.default_rng([self.seed, candidates_key(clips)])
            choice, preferred = self.taste.pick(clips, rng), self.taste.best(clips)
            result = [{"from_name": CHOICE, "to_name": FIRST_VIDEO, "type": "choices",
                       "value": {"choices": [choice_name(choice)]}}]
            server_call("submitting an annotation", client.annotations.create, id=task["id"], result=result,
                        lead_time=time.perf_counter() - started)
            given.append(Answer(task["id"], project, choice, preferred))
        self.answers += given
        return given

    @contextmanager
    def running(self, poll_s: float = 0.5, projects: Callable[[str], bool] | None = None,
                errors: list[Exception] | None = None) -> Iterator[ScriptedReviewer]:
        """Answer new tasks every ``poll_s`` seconds in a background thread while the block runs; a failing
        look is recorded in ``errors`` (and tried again at the next one), never raised into the thread."""
        stop = threading.Event()

        def work() -> None:
            while not stop.is_set():
                try:
                    self.answer_pending(projects=projects)
                except (ReviewServerError, httpx.HTTPError) as exc:
                    if errors is not None:
                        errors.append(exc)
                stop.wait(poll_s)

        thread = threading.Thread(target=work, name=f"reviewer-{self.email}", daemon=True)
        thread.start()
        try:
            yield self
        finally:
            stop.set()
            thread.join()

    def close(self) -> None:
        self.session.close()


def _account_token(session: httpx.Client) -> str:
    """The signed-in account's API token: its legacy token where the server allows those, else a new
    personal access token (a refresh JWT, which the SDK takes as its key)."""
    legacy = session.get("/api/current-user/token")
    if legacy.status_code == 200 and legacy.json().get("token"):
        return legacy.json()["token"]
    personal = session.post("/api/token/", headers={"X-CSRFToken": session.cookies.get("csrftoken", "")})
    if personal.status_code in (200, 201) and personal.json().get("token"):
        return personal.json()["token"]
    raise ReviewServerError(f"could not sign in (login or token refused, HTTP {legacy.status_code}/"
                            f"{personal.status_code}); check the reviewer's email and password")
