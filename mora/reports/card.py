"""The dataset card: ``ROOT/DATASET/README.md`` in the Hugging Face format.

The YAML header names one ``configs`` entry per iteration (``iteration_K``, its files under
``data/iteration=K/``) and an ``all`` entry (the default), so ``datasets.load_dataset(ROOT/DATASET,
"iteration_2")`` and ``huggingface_hub.DatasetCard.load`` work on the folder as it is, and the folder
uploads to the Hub as a dataset repository unchanged. The body is for people: what the data is, its
columns, per-iteration counts, models, criteria, judges against people, and the checkpoint lineage.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import yaml

from mora.atomic import write_atomic
from mora.datasets.agreement import agreement_markdown
from mora.datasets.facts import COUNTS, DatasetFacts
from mora.datasets.schema import SCHEMA, SCHEMA_VERSION
from mora.datasets.shards import DATA, dataset_dir, iteration_of, shard_files
from mora.judges.criteria import CRITERIA
from mora.reports.lineage import lineage_rows
from mora.review.precision import COLUMNS as ROUTING_COLUMNS

CARD = "README.md"


COLUMN_DOCS = {
    "set_id": "`ROUNDID/pNNNNN`: the four candidates of one prompt share it",
    "prompt_source": "`llm`, `synthesizer` or `seed`",
    "enhanced_prompt": "the prompt the agents generated from", "enhanced_by": "the model that enhanced it",
    "candidate_index": "0..3 within the set", "seed": "the candidate's own seed", "video": "mp4 (H.264) bytes",
    "generator_models": "`{role, model_id, revision}` per agent (and the checkpoint)",
    "gate_metrics": "motion, flicker, dark/bright fraction, sharpness",
    "gate_failures": "hard quality gates failed (empty: passed)",
    "criterion": "the evaluation criterion drawn for the set",
    "judges": "per judge: ranking (best first), scores, confidence, per-order answers, abstention",
    "decision": "`accepted`, `needs_review` or `discarded`",
    "decision_source": "`judges` (agreement), `judges-reliability` (routing by measured reliability) or `human`",
    "selected": "the winner of an accepted set",
    "review": "null unless people decided: reviewers, choice, reason, time spent",
    "routing": "how the set was routed before people saw it: rule, its decision and winner, the winner's "
               "probability of being people's choice, the certified threshold, the audit flag, why people see it",
}


def _type(t) -> str:
    """Arrow types, short: nested ones by their outer shape (the meaning column names the fields)."""
    text = str(t)
    return f"`{text}`" if len(text) <= 24 else f"`{text.split('<', 1)[0]}<…>`"


def config_name(iteration: int) -> str:
    return f"iteration_{iteration}"


def card_header(dataset: str, iterations: list[int], sizes: dict[str, int]) -> dict:
    """``sizes``: bytes of each config's files. ``datasets`` keys its cache by the card's configs and
    infos only (not by the folder or the files' times), so the sizes in ``dataset_info`` are what makes
    a collect's rewritten shards, or another root's dataset of the same name, load fresh."""
    configs = [{"config_name": "all", "default": True,
                "data_files": [{"split": "train", "path": f"{DATA}/iteration=*/*.parquet"}]}]
    configs += [{"config_name": config_name(k),
                 "data_files": [{"split": "train", "path": f"{DATA}/iteration={k}/*.parquet"}]} for k in iterations]
    infos = [{"config_name": c["config_name"], "download_size": sizes[c["config_name"]]} for c in configs]
    return {"pretty_name": f"mora {dataset}", "task_categories": ["text-to-video"],
            "tags": ["mora", "synthetic", "video", "preference", "human-feedback"], "configs": configs,
            "dataset_info": infos}


def table(rows: list[dict], columns: list[str]) -> str:
    if not rows:
        return "_none yet_"
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(str(r.get(c, "")) for c in columns) + " |" for r in rows]
    return "\n".join(lines)


def card_body(dataset: str, facts: DatasetFacts, lineage: list[dict]) -> str:
    first = facts.iterations[0] if facts.iterations else 1
    meaning = {c.key: c.description for c in CRITERIA}
    criteria = [c | {"meaning": meaning.get(c["criterion"], "")} for c in facts.criteria]
    columns = "\n".join(f"| `{f.name}` | {_type(f.type)} | {COLUMN_DOCS.get(f.name, '')} |" for f in SCHEMA)
    return f"""# mora {dataset}

Synthetic text-to-video training data made by mora (an implementation of *Mora:
Enabling Generalist Video Generation via A Multi-Agent Framework*): for each new prompt the agents made
four candidate videos; two multimodal judges ranked them under one evaluation criterion drawn at random;
when both picked the same candidate it was accepted, otherwise people chose the best in Label Studio or
rejected the whole set. Every candidate is kept, with both judges' rankings and every human decision;
`selected` marks the winners. This card is rewritten by mora after every round and every review collect
(last: {datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")}).

## Loading

```python
import datasets, pandas as pd
one = datasets.load_dataset("path/to/{dataset}", "{config_name(first)}", split="train")  # one iteration
everything = datasets.load_dataset("path/to/{dataset}", split="train")  # config "all"
df = pd.read_parquet("path/to/{dataset}/{DATA}")  # pandas and pyarrow read the data folder
winners = df[df.selected]  # the accepted (prompt, video) pairs
```

`datasets` does not read the `iteration=K` folder as a column: pick an iteration by its config.

## Schema (version {SCHEMA_VERSION})

One row per candidate video; `video` holds the mp4 (H.264) bytes.

| column | type | meaning |
|---|---|---|
{columns}

## Iterations

`accepted_by_judges`: both judges picked the same passing candidate. `accepted_by_people` /
`discarded_by_people`: a reviewer chose a candidate / rejected every one. `discarded_by_gates`: every
candidate failed a quality gate. `pending_review`: the judges disagreed and people have not decided yet.

{table(facts.counts, COUNTS)}

## Models

Generators (per iteration; `checkpoint` is mora's fine-tuned weights over the base models):

{table(facts.generators, ["iteration", "role", "model_id", "revision"])}

Judges:

{table(facts.judges, ["judge", "model", "backend", "method"])}

## Criteria used

{table(criteria, ["iteration", "criterion", "sets", "meaning"])}

## Review routing and precision

Per iteration: the rule that routed its sets (`agreement`: the paper's, both judges agree; `reliability`:
the probability that people choose the winner clears a threshold certified on audited human decisions),
the sets people saw and the review load (their share, audits included), the sets the judges accepted, how
many of those were drawn for audit and decided by people, and the estimated share of accepted sets whose
winner people would choose (rejecting all counts as disagreeing) with its 95% interval:
prediction-powered inference (PPI++) from the audited sets and the reliability model's predictions for
the other accepted sets, or, below 30 audited decisions, the Wilson interval of the audited sets alone.
Without audits the precision is not measured.

{table([_show(r) for r in facts.routing], ROUTING_COLUMNS)}

Reliability of the judges under each criterion and of each reviewer, as the one-coin Dawid-Skene model
(refitted at every round and collect, audited sets held out) measures it: how often their pick is the
best candidate, with a 95% interval.

{table(facts.reliability, ["annotator", "criterion_or_reviewer", "sets", "accuracy", "low", "high"])}

## Judges checked against people

For every set people decided: how often each judge's pick (its best-ranked candidate that passed the
gates) was the candidate people chose, with a 95% Wilson interval. Sets people rejected outright and
a judge's abstentions are counted apart.

{agreement_markdown(facts.agreement)}

## Checkpoint lineage

{table(lineage, ["iteration", "generated_with", "trained_into", "parent", "examples", "steps", "loss_last"])}
"""


def _show(row: dict) -> dict:
    """Empty cells as a dash."""
    return {k: "–" if v is None else v for k, v in row.items()}


def config_sizes(root: Path, dataset: str) -> dict[str, int]:
    sizes = {"all": 0}
    for path in shard_files(root, dataset):
        name = config_name(iteration_of(path))
        sizes[name] = sizes.get(name, 0) + path.stat().st_size
        sizes["all"] += path.stat().st_size
    return sizes


def render_card(dataset: str, facts: DatasetFacts, lineage: list[dict], sizes: dict[str, int]) -> str:
    header = yaml.safe_dump(card_header(dataset, facts.iterations, sizes), sort_keys=False, allow_unicode=True)
    return f"---\n{header}---\n\n{card_body(dataset, facts, lineage)}"


def write_card(root: Path, dataset: str, facts: DatasetFacts) -> Path:
    text = render_card(dataset, facts, lineage_rows(facts, root, dataset), config_sizes(root, dataset))
    return write_atomic(dataset_dir(root, dataset) / CARD, lambda tmp: tmp.write_text(text))
