"""What a round has finished, on disk, so that a crashed round resumes where it stopped.

``ROOT/_state/DATASET/rounds/ROUND_ID/`` holds the planned prompts, one staged Parquet file per
finished candidate set (the shards are rolled from them as their sets finish), the claims of sets
in the making (``mora.round.claims``) and a record of which worker made each set. Every file is
written atomically, so a crash leaves either a whole set or none.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from mora.atomic import write_json_atomic
from mora.config import RoundConfig
from mora.datasets.schema import SCHEMA
from mora.datasets.shards import write_parquet
from mora.round.claims import Claims

WITHOUT_VIDEO = [name for name in SCHEMA.names if name != "video"]


@dataclass
class PlannedPrompt:
    index: int
    prompt: str
    source: str  # llm | synthesizer | seed
    enhanced: str
    enhanced_by: str

    @property
    def set_id(self) -> str:
        return f"p{self.index:05d}"


def state_root(config: RoundConfig) -> Path:
    return Path(config.shards.root) / "_state" / config.shards.dataset


class RoundState:
    def __init__(self, config: RoundConfig):
        self.round_id = config.round_id
        self.dir = state_root(config) / "rounds" / self.round_id
        self.sets_dir = self.dir / "sets"

    @property
    def complete(self) -> bool:
        return (self.dir / "complete.json").exists()

    def mark_complete(self, summary: dict) -> None:
        write_json_atomic(self.dir / "complete.json", summary)

    def summary(self) -> dict:
        return json.loads((self.dir / "complete.json").read_text())

    @property
    def published(self) -> bool:
        """The dataset card and report were rewritten after this round completed (a crash in between
        leaves complete.json without it, and the next run of the round publishes)."""
        return (self.dir / "published.json").exists()

    def mark_published(self, products: dict) -> None:
        write_json_atomic(self.dir / "published.json", products)

    def started_at(self, now: str) -> str:
        """The first start of this round, kept across resumes."""
        path = self.dir / "started.json"
        if not path.exists():
            write_json_atomic(path, {"started_at": now})
        return json.loads(path.read_text())["started_at"]

    def threads(self, wanted: int) -> int:
        """The torch thread count of this round: the one recorded at its first start, else ``wanted``, recorded
        now. Its videos depend on the count, so a round resumed elsewhere (a machine with fewer cores, the
        other engine) goes on with the count it started with, never a mix."""
        path = self.dir / "threads.json"
        if not path.exists():
            write_json_atomic(path, {"threads": wanted})
        return int(json.loads(path.read_text())["threads"])

    def load_prompts(self) -> list[PlannedPrompt] | None:
        path = self.dir / "prompts.json"
        return [PlannedPrompt(**p) for p in json.loads(path.read_text())] if path.exists() else None

    def save_prompts(self, prompts: list[PlannedPrompt]) -> None:
        write_json_atomic(self.dir / "prompts.json", [asdict(p) for p in prompts])

    def _set_path(self, set_id: str) -> Path:
        return self.sets_dir / f"{set_id}.parquet"

    def has_set(self, set_id: str) -> bool:
        return self._set_path(set_id).exists()

    def done_count(self) -> int:
        return len(list(self.sets_dir.glob("*.parquet"))) if self.sets_dir.exists() else 0

    def save_set(self, set_id: str, rows: list[dict]) -> None:
        write_parquet(pa.Table.from_pylist(rows, schema=SCHEMA), self._set_path(set_id))

    def set_table(self, set_id: str, columns: list[str] | None = None) -> pa.Table:
        return pq.read_table(self._set_path(set_id), schema=SCHEMA, columns=columns)

    def load_rows(self, prompts: list[PlannedPrompt], columns: list[str] | None = None) -> list[dict]:
        """The staged rows of these sets; ``columns=WITHOUT_VIDEO`` keeps a big round's videos on disk."""
        rows = []
        for p in prompts:
            rows.extend(self.set_table(p.set_id, columns).to_pylist())
        return rows

    def video(self, row: dict) -> bytes:
        """One candidate's video from its staged set, for rows read without theirs."""
        table = self.set_table(row["set_id"].rsplit("/", 1)[-1], ["candidate_index", "video"])
        return table.column("video")[table.column("candidate_index").to_pylist().index(row["candidate_index"])].as_py()

    def claims(self, lease_s: float) -> Claims:
        return Claims(self.dir / "claims", lease_s)

    def record_made(self, set_id: str, owner: str, made_by: dict) -> None:
        """Who made a set, one file per (set, driver): a set made twice would show two."""
        write_json_atomic(self.dir / "made" / f"{set_id}.{owner}.json", {"set_id": set_id, "driver": owner,
                                                                          **made_by})

    def made(self) -> list[dict]:
        folder = self.dir / "made"
        return [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))] if folder.exists() else []
