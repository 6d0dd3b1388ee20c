"""The iteration report: ``ROOT/_reports/DATASET/index.html``, one static page a dataset owner opens
in a browser (no server). Images lie beside it and are linked by relative paths: the round's contact
sheets (``iteration=K/*contact-sheet*.png``) and a trend figure drawn here from the shards (plus the
fine-tuning figures of ``self-train-trends.json`` when self-training wrote them).
"""

from __future__ import annotations

import html
import json
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote

from mora.atomic import write_atomic
from mora.datasets.facts import COUNTS, DatasetFacts
from mora.reports.lineage import lineage_rows
from mora.review.precision import COLUMNS as ROUTING_COLUMNS
from mora.training import trends

INDEX = "index.html"
TREND_FIGURE = "iteration-trends.png"
STYLE = """body{font-family:system-ui,sans-serif;margin:2em;max-width:1400px;color:#222}
table{border-collapse:collapse;margin:.5em 0 1.5em}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}
th{background:#f3f3f3}td.l,th.l{text-align:left}img{max-width:100%;border:1px solid #ddd;margin:4px 0}
figure{margin:0 0 1em}figcaption{font-size:.85em;color:#555}"""


def reports_dir(root: Path, dataset: str) -> Path:
    return Path(root) / "_reports" / dataset


def html_table(rows: list[dict], columns: list[str], left: tuple[str, ...] = ()) -> str:
    if not rows:
        return "<p><em>none yet</em></p>"
    head = "".join(f'<th class="{"l" if c in left else ""}">{html.escape(c)}</th>' for c in columns)
    body = "".join("<tr>" + "".join(f'<td class="{"l" if c in left else ""}">{html.escape(_cell(r.get(c)))}</td>'
                                    for c in columns) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _cell(value) -> str:
    if value is None:
        return "–"
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def trend_records(root: Path, dataset: str, iterations: list[int]) -> list[dict]:
    """Data figures per iteration from the shards as they are now, with the fine-tuning figures
    self-training recorded for that iteration (if any)."""
    path = reports_dir(root, dataset) / "self-train-trends.json"
    trained = {r["iteration"]: r for r in json.loads(path.read_text())} if path.is_file() else {}
    return [trained.get(k, {}) | trends.data_metrics(root, dataset, k) for k in iterations]


def contact_sheets(folder: Path) -> dict[int, list[Path]]:
    sheets: dict[int, list[Path]] = {}
    for path in sorted(folder.glob("iteration=*/*contact-sheet*.png")):
        sheets.setdefault(int(path.parent.name.split("=", 1)[1]), []).append(path)
    return dict(sorted(sheets.items()))


def _img(path: Path, folder: Path, caption: str) -> str:
    src = quote(path.relative_to(folder).as_posix())
    return (f'<figure><img src="{src}" alt="{html.escape(caption)}" loading="eager">'
            f"<figcaption>{html.escape(caption)}</figcaption></figure>")


def render_report(dataset: str, facts: DatasetFacts, lineage: list[dict], folder: Path,
                  figure: Path | None) -> str:
    parts = [f"<h1>mora {html.escape(dataset)}: iterations</h1>",
             f"<p>Written {datetime.now(UTC):%Y-%m-%d %H:%M UTC} from the shards; rewritten after every round "
             "and every review collect. The dataset card is <code>README.md</code> in the dataset folder.</p>",
             "<h2>Per iteration</h2>", html_table(facts.counts, COUNTS),
             "<h2>Review routing and precision</h2>",
             "<p>Per iteration: the rule that routed its sets, the review load (share of sets people saw, audits "
             "included), the sets the judges accepted, the audited ones people decided, and the estimated share "
             "of accepted sets whose winner people would choose, with a 95% interval (PPI++ from the audited sets "
             "and the reliability model's predictions; below 30 audited decisions, their Wilson interval). See "
             "the README, \"Review routing\".</p>",
             html_table(facts.routing, ROUTING_COLUMNS, left=("iteration", "rule", "method")),
             "<p>Judges per criterion and reviewers, as the reliability model measures them: how often their pick "
             "is the best candidate, with a 95% interval.</p>",
             html_table(facts.reliability, ["annotator", "criterion_or_reviewer", "sets", "accuracy", "low", "high"],
                        left=("annotator", "criterion_or_reviewer")),
             "<h2>Judges checked against people</h2>",
             "<p>For each set people decided: how often the judge's pick was the person's, with a 95% Wilson "
             "interval.</p>",
             html_table(facts.agreement, ["judge", "by", "value", "matches", "sets", "rate", "low", "high",
                                          "rejected_all", "abstained"], left=("judge", "by", "value")),
             "<h2>Trends</h2>",
             _img(figure, folder, "curation and quality proxies per iteration (fine-tuning panels after "
                                  "self-training)") if figure else "<p><em>no iteration yet</em></p>",
             "<h2>Checkpoint lineage</h2>",
             html_table(lineage, ["iteration", "generated_with", "trained_into", "parent", "examples", "steps",
                                  "loss_last"], left=("generated_with", "trained_into", "parent")),
             "<h2>Contact sheets</h2>",
             "<p>One column per set, one row per candidate: the winner framed green, gated candidates red.</p>"]
    for iteration, sheets in contact_sheets(folder).items():
        parts.append(f"<h3>Iteration {iteration}</h3>")
        parts += [_img(p, folder, p.name) for p in sheets]
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>mora {html.escape(dataset)}</title>'
            f"<style>{STYLE}</style></head><body>{''.join(parts)}</body></html>")


def write_report(root: Path, dataset: str, facts: DatasetFacts) -> Path:
    folder = reports_dir(root, dataset)
    figure = None
    if facts.iterations:
        records = trend_records(root, dataset, facts.iterations)
        figure = trends.plot_trends(records, folder / TREND_FIGURE, f"mora {dataset}: per iteration")
    text = render_report(dataset, facts, lineage_rows(facts, root, dataset), folder, figure)
    return write_atomic(folder / INDEX, lambda tmp: tmp.write_text(text))
