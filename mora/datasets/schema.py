"""The shard schema, versioned: one row per candidate, the winner marked ``selected``.

Layout: ``ROOT/DATASET/data/iteration=K/part-ROUNDID-NNNNN.parquet`` (Hive-style, so pyarrow and
``datasets`` recognise the iteration) beside the dataset card ``ROOT/DATASET/README.md`` (see
``mora.datasets.shards``). The video is stored in the row as mp4 bytes: a shard is one
self-contained file that is written atomically, moved and copied as a unit, and read by
``datasets`` without path fix-ups; tiny candidates are a few KB and real ones a few MB, well within
a Parquet row group. Round state (resume, pending reviews) lives under ``ROOT/_state``, never inside
a dataset folder.

The iteration is the partition key only (``iteration=K`` in the path), not a column in the files:
pandas and pyarrow add it from the path, and a column of the same name would clash with it there.
``datasets`` does not read partition keys: load one iteration by the card's config,
``load_dataset("ROOT/DATASET", "iteration_K")``; ``round_id`` names the iteration too.
"""

from __future__ import annotations

import pyarrow as pa

SCHEMA_VERSION = 4  # 2: judges' method, backend and per-order answers; the human review; 3: its full ranking;
# 4: ``routing`` (the rule that routed the set, its winner's probability, the audit flag). Shards written
# before a version stay as they are: mora reads every file with this schema (a column or field a file
# lacks reads as null), and ``mora dataset migrate`` rewrites older shards for readers outside mora

MODEL = pa.struct([("role", pa.string()), ("model_id", pa.string()), ("revision", pa.string())])
ORDER = pa.struct([("order", pa.list_(pa.int32())), ("ranking", pa.list_(pa.int32())),
                   ("answer", pa.string())])  # answer: the judge's words (free text), else null
JUDGE = pa.struct([
    ("judge", pa.string()), ("model", pa.string()), ("ranking", pa.list_(pa.int32())),
    ("scores", pa.list_(pa.float64())), ("confidence", pa.float64()), ("per_order", pa.list_(ORDER)),
    ("method", pa.string()), ("backend", pa.string()), ("abstained", pa.bool_()), ("reason", pa.string()),
    ("seconds", pa.float64()),
])
GATES = pa.struct([("motion", pa.float64()), ("flicker", pa.float64()), ("dark_fraction", pa.float64()),
                   ("bright_fraction", pa.float64()), ("sharpness", pa.float64())])
TS = pa.timestamp("us", tz="UTC")
REVIEW = pa.struct([("reviewers", pa.list_(pa.string())), ("choice", pa.string()), ("reason", pa.string()),
                    ("lead_time_s", pa.float64()), ("annotations", pa.int32()), ("task_id", pa.int64()),
                    ("reviewed_at", TS),  # when the reviewer submitted (the annotation's own time)
                    ("ranking", pa.list_(pa.int32()))])  # null unless people decided; ranking: a full order
ROUTING = pa.struct([  # how the set was routed before people saw it (mora.review.routing); null before v4
    ("rule", pa.string()),  # agreement | reliability: the rule in force (reliability falls back to agreement)
    ("decision", pa.string()),  # what the rule decided: accepted | needs_review | discarded
    ("winner", pa.int32()),  # the candidate the rule accepts (or would): agreement's common pick, else the likeliest
    ("probability", pa.float64()),  # the reliability model's probability that people choose ``winner``
    ("threshold", pa.float64()),  # reliability: the certified threshold; null under agreement
    ("audited", pa.bool_()),  # drawn for audit before judging: people decide it whatever the rule said
    ("why", pa.string()),  # why people see the set (null: they do not)
])

SCHEMA = pa.schema([
    ("schema_version", pa.int16()),
    ("round_id", pa.string()),
    ("set_id", pa.string()),
    ("prompt_index", pa.int32()),
    ("prompt", pa.string()),
    ("prompt_source", pa.string()),  # llm | synthesizer | seed
    ("enhanced_prompt", pa.string()),
    ("enhanced_by", pa.string()),  # the prompt agent's model, or "none" when its answer was unusable
    ("procedure", pa.string()),
    ("candidate_index", pa.int8()),
    ("seed", pa.int64()),
    ("video", pa.binary()),  # mp4 (H.264)
    ("num_frames", pa.int32()),
    ("fps", pa.float32()),
    ("width", pa.int32()),
    ("height", pa.int32()),
    ("generator_models", pa.list_(MODEL)),
    ("gate_metrics", GATES),
    ("gate_failures", pa.list_(pa.string())),  # empty: passed every hard gate
    ("criterion", pa.string()),
    ("criterion_seed", pa.int64()),
    ("judges", pa.list_(JUDGE)),
    ("decision", pa.string()),  # accepted | needs_review | discarded
    ("decision_source", pa.string()),  # judges (agreement) | judges-reliability | human
    ("decision_reason", pa.string()),
    ("selected", pa.bool_()),
    ("review", REVIEW),
    ("routing", ROUTING),
    ("generation_seconds", pa.float64()),
    ("created_at", TS),
    ("round_started_at", TS),
])
