"""What a reviewer sees for one candidate set, and how the answer comes back.

One screen (1440x900) holds everything: the enhanced and the original prompt on top; the four players
in a 2x2 grid, laid out in key order (1 2 / 3 4), playing in step from any one play button (Label
Studio's ``sync`` group) at the clip's own frame rate; beside them the criterion with what wins under
it, the judges' table (rankings and scores, disagreements marked, collapsible), the choices with their
keys and the reason box. Label Studio's region sidebar is hidden: this task has no regions.

Nothing is pre-selected: the judges' ranks and scores are in the task's text, and their pick is attached
as a prediction only to tasks of projects that pre-label (``mora review push --preannotate``). Label
Studio's label stream shows a prediction only where the project pre-labels, but a task opened from the
Data Manager (as a project owner does) selects its first prediction whatever the setting, so without
pre-labelling there is none to select. Label Studio's choice hotkeys toggle; each key is therefore also
bound to a hidden twin placed before the visible choice, so pressing a key twice leaves it selected.
"""

from __future__ import annotations

from html import escape
from pathlib import Path
from urllib.parse import quote
from xml.sax.saxutils import quoteattr

from mora.judges.criteria import CRITERIA
from mora.review.instructions import wins

REJECT_ALL = "reject_all"
CHOICE, REASON, RANKING, FIRST_VIDEO = "choice", "reason", "ranking", "video_0"
SYNC_GROUP = "candidates"
VIDEO_HEIGHT = 236  # px per player: two rows of players, their controls and the prompt fill 900 px
REJECT_KEYS = "0,r"

STYLE = """
  .lsf-sidepanels { padding-left: 0 !important; padding-right: 0 !important; }
  .lsf-sidepanels__wrapper { display: none !important; }
  .lsf-main-view__annotation { padding: 8px 12px !important; }
  .mora-head { margin-bottom: 4px; }
  .mora-head .lsf-richtext__container { padding: 0 !important; font-size: 14px; line-height: 1.35; }
  .mora-body { display: grid; grid-template-columns: minmax(0, 1fr) 340px; gap: 12px; align-items: start; }
  .mora-grid { display: grid; grid-template-columns: minmax(0, 1fr) minmax(0, 1fr); gap: 4px 10px; }
  .mora-cell { min-width: 0; overflow: hidden; container-type: inline-size; }  /* no '>': Label Studio escapes it */
  .mora-grid h3, .mora-grid h4 { margin: 0 0 2px 0 !important; font-size: 14px !important;
                                 line-height: 18px !important; }
  .mora-grid .lsf-timeline__topbar { min-height: 0 !important; }
  .mora-grid .lsf-timeline-controls, .mora-grid .lsf-seeker { min-width: 0 !important; width: 100% !important; }
  @container (max-width: 520px) {
    .lsf-timeline-controls__time, .lsf-frames-control { display: none !important; }
  }
  .mora-explorer-only { display: none; }
  .lsf-label-view__lsf-wrapper_mode_explorer .mora-explorer-only { display: inline; }
  .lsf-label-view__lsf-wrapper_mode_explorer .mora-stream-only { display: none; }
  .mora-side { font-size: 13px; }
  .mora-side .lsf-richtext__container { padding: 0 !important; font-size: 13px; line-height: 1.35; }
  .mora-side table { border-collapse: collapse; margin: 4px 0; font-size: 12px; }
  .mora-side td, .mora-side th { border: 1px solid #ccc; padding: 1px 5px; text-align: center; }
  .mora-side .differ { background: #ffe9b3; }
  .mora-side .split { background: #ffc9c9; font-weight: bold; }
  .mora-side .top { font-weight: bold; }
  .mora-why { margin-bottom: 4px; padding: 2px 6px; background: #eef4ff; border-left: 3px solid #4a7bd0; }
  .mora-choices .lsf-choices { display: flex; flex-direction: column; gap: 2px; margin-top: 6px; }
  .mora-choices .lsf-choice:nth-child(odd) { display: none !important; }
"""


def choice_name(candidate: int) -> str:
    return f"candidate_{candidate}"


def key_of(candidate: int) -> str:
    """The key that selects a candidate: 1 to 4 in the order the grid lays them out."""
    return str(candidate + 1)


def _choice(value: str, hotkey: str, label: str) -> str:
    return f"<Choice value={quoteattr(value)} hotkey={quoteattr(hotkey)} html={quoteattr(label)}/>"


def labeling_config(candidates: int = 4, rankings: bool = False) -> str:
    """The task's layout; ``rankings`` also asks for a full order of the candidates (Label Studio's Ranker)."""
    cells = "\n".join(
        f'      <View className="mora-cell"><Header value="{key_of(i)} · {choice_name(i)}" size="4"/>'
        f'<Video name="video_{i}" value="$video_{i}" frameRate="$fps" sync="{SYNC_GROUP}" muted="true" '
        f'height="{VIDEO_HEIGHT}"/></View>' for i in range(candidates))
    pairs = [(choice_name(i), key_of(i), f"<b>{choice_name(i)}</b>") for i in range(candidates)]
    pairs.append((REJECT_ALL, REJECT_KEYS, "<b>reject all</b>"))
    choices = "\n".join(f"        {_choice(v, k, label)}\n        {_choice(v, k, label)}" for v, k, label in pairs)
    ranker = (f'\n      <List name="candidate_list" value="$candidate_list" title="Full order, best first (drag)"/>'
              f'\n      <Ranker name="{RANKING}" toName="candidate_list"/>') if rankings else ""
    return f"""<View>
  <Style>{STYLE}</Style>
  <View className="mora-head"><HyperText name="head" value="$head" inline="true"/></View>
  <View className="mora-body">
    <View className="mora-grid">
{cells}
    </View>
    <View className="mora-side">
      <HyperText name="brief" value="$brief" inline="true"/>
      <View className="mora-choices">
      <Choices name="{CHOICE}" toName="{FIRST_VIDEO}" choice="single" required="true"
               requiredMessage="Choose a candidate (1-4) or reject all (0)">
{choices}
      </Choices>
      </View>{ranker}
      <TextArea name="{REASON}" toName="{FIRST_VIDEO}" placeholder="Why? (optional)" rows="2" maxSubmissions="1"
                editable="true" showSubmitButton="false"/>
    </View>
  </View>
</View>"""


def media_url(path: Path, root: Path, media: Path | None = None) -> str:
    """Label Studio's local-files URL (relative to its document ``root``) for a file in the ``media``
    folder (default: the root); a symbolic link, or anything resolving outside that folder, is refused."""
    path, base, inside = Path(path), Path(root).resolve(), Path(media or root).resolve()
    if path.is_symlink():
        raise ValueError(f"media path {path} is a symbolic link; review media are regular files only")
    resolved = path.resolve()
    if not resolved.is_relative_to(inside):
        raise ValueError(f"media path {path} lies outside the media folder {media or root}")
    return "/data/local-files/?d=" + quote(resolved.relative_to(base).as_posix())


def judges_text(judges: list[dict]) -> str:
    parts = []
    for j in judges:
        if j["abstained"]:
            parts.append(f"{j['judge']}: abstained ({j.get('reason') or 'no reason'})")
        else:
            parts.append(f"{j['judge']}: " + " > ".join(choice_name(c) for c in j["ranking"]))
    return "Judges. " + "; ".join(parts)


def judges_table(judges: list[dict], candidates: int = 4) -> str:
    """Each judge's rank and score per candidate; ranks the judges differ on are shaded, a split winner red."""
    ranked = [j for j in judges if not j["abstained"] and j["ranking"]]
    ranks = {j["judge"]: {c: r for r, c in enumerate(j["ranking"], start=1)} for j in ranked}
    tops = {j["ranking"][0] for j in ranked}
    head = "".join(f"<th>{key_of(i)}</th>" for i in range(candidates))
    rows = []
    for j in judges:
        name = escape(j["judge"])
        if j["abstained"] or not j["ranking"]:
            rows.append(f'<tr><td>{name}</td><td colspan="{candidates}">abstained: '
                        f'{escape(j.get("reason") or "no reason")}</td></tr>')
            continue
        scores = j.get("scores") or []
        cells = []
        for i in range(candidates):
            rank = ranks[j["judge"]].get(i)
            differ = len({r.get(i) for r in ranks.values()}) > 1
            cls = "split" if rank == 1 and len(tops) > 1 else "top" if rank == 1 else "differ" if differ else ""
            score = f" · {scores[i]:.2f}" if i < len(scores) and scores[i] is not None else ""
            cells.append(f'<td class="{cls}">{"#" + str(rank) if rank else "-"}{score}</td>')
        rows.append(f"<tr><td>{name}</td>{''.join(cells)}</tr>")
    verdict = ("the judges disagree on the winner" if len(tops) > 1 else
               "the judges agree on the winner" if len(ranked) > 1 else "only one judge gave a ranking")
    return (f'<details open><summary><b>Judges</b>: {verdict} (rank · score per candidate key)</summary>'
            f"<table><tr><th>judge</th>{head}</tr>{''.join(rows)}</table></details>")


def preferred(judges: list[dict]) -> tuple[int, float] | None:
    """The candidate of the most confident judge that did not abstain, with that confidence."""
    ranked = [j for j in judges if not j["abstained"] and j["ranking"]]
    if not ranked:
        return None
    best = max(ranked, key=lambda j: j.get("confidence") or 0.0)
    return best["ranking"][0], float(best.get("confidence") or 0.0)


def task_payload(record: dict, video_urls: list[str], fps: float = 24.0, repeats: int = 1, why: str | None = None,
                 priority: float | None = None, preannotate: bool = False) -> dict:
    """The task's data; with ``preannotate`` (a project that pre-labels) the judges' pick as a prediction.
    ``why``: the line that tells the reviewer why the set is theirs; ``priority``: its place in the queue
    (``mora.review.ordering``), kept in the data so Label Studio can sort by it."""
    criterion = next((c.description for c in CRITERIA if c.key == record["criterion"]), record["criterion"])
    looped = f" Short clips repeat {repeats}x." if repeats > 1 else ""
    head = (f'<div style="font-size:16px"><b>{escape(record["enhanced_prompt"])}</b></div>'
            f'<div style="color:#555">Original prompt: {escape(record["prompt"])}</div>')
    because = f'<div class="mora-why"><b>Why you see this set:</b> {escape(why)}</div>' if why else ""
    brief = (f"{because}<div><b>Criterion:</b> {escape(criterion)}</div><div><b>What wins:</b> "
             f"{escape(wins(record['criterion']))}.{looped}</div>"
             f"{judges_table(record['judges'], len(video_urls))}"
             f'<div style="color:#555">Keys: 1-4 choose, 0 or R reject all, Ctrl+Enter submits; '
             f'<span class="mora-stream-only">Skip leaves the set for later.</span>'
             f'<span class="mora-explorer-only">to leave the set for later, open another task: nothing is '
             f"recorded (Skip is in the label stream, Label All Tasks).</span></div>")
    data = {"set_id": record["set_id"], "prompt": record["enhanced_prompt"], "original_prompt": record["prompt"],
            "criterion": f"Criterion: {criterion}", "judges": judges_text(record["judges"]),
            "iteration": record["iteration"], "fps": round(float(fps), 3), "head": head, "brief": brief,
            "candidate_list": [{"id": choice_name(i), "title": f"{key_of(i)} · {choice_name(i)}", "body": ""}
                               for i in range(len(video_urls))]}
    data |= {f"video_{i}": url for i, url in enumerate(video_urls)}
    if why is not None:
        data["why"] = why
    if priority is not None:
        data["priority"] = priority
    task = {"data": data}
    pick = preferred(record["judges"]) if preannotate else None
    if pick is not None:
        task["predictions"] = [{"model_version": "judges", "score": pick[1], "result": [{
            "from_name": CHOICE, "to_name": FIRST_VIDEO, "type": "choices",
            "value": {"choices": [choice_name(pick[0])]}}]}]
    return task
