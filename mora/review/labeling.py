"""What a reviewer sees for one candidate set, and how the answer comes back.

Four players in a 2x2 grid (four columns overflow the task panel), the prompt, the criterion and both
judges' rankings; one choice among candidate_0..candidate_3 and reject_all, and a reason box. The
judges' preferred candidate is offered as a prediction (pre-annotation) the reviewer can accept.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

from mora.judges.criteria import CRITERIA

REJECT_ALL = "reject_all"
CHOICE, REASON, FIRST_VIDEO = "choice", "reason", "video_0"


def choice_name(candidate: int) -> str:
    return f"candidate_{candidate}"


def labeling_config(candidates: int = 4) -> str:
    cells = "\n".join(
        f'    <View style="padding: 4px"><Header value="{choice_name(i)}" size="6"/>'
        f'<Video name="video_{i}" value="$video_{i}" height="240"/></View>' for i in range(candidates))
    choices = "\n".join(f'    <Choice value="{choice_name(i)}"/>' for i in range(candidates))
    return f"""<View>
  <Header value="$prompt"/>
  <Text name="criterion" value="$criterion"/>
  <Text name="judges" value="$judges"/>
  <View style="display: grid; grid-template-columns: 1fr 1fr; gap: 8px">
{cells}
  </View>
  <Choices name="{CHOICE}" toName="{FIRST_VIDEO}" choice="single" required="true" showInline="true">
{choices}
    <Choice value="{REJECT_ALL}"/>
  </Choices>
  <TextArea name="{REASON}" toName="{FIRST_VIDEO}" placeholder="Why? (optional)" maxSubmissions="1" editable="true"/>
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


def preferred(judges: list[dict]) -> tuple[int, float] | None:
    """The candidate of the most confident judge that did not abstain, with that confidence."""
    ranked = [j for j in judges if not j["abstained"] and j["ranking"]]
    if not ranked:
        return None
    best = max(ranked, key=lambda j: j.get("confidence") or 0.0)
    return best["ranking"][0], float(best.get("confidence") or 0.0)


def task_payload(record: dict, video_urls: list[str]) -> dict:
    criterion = next((c.description for c in CRITERIA if c.key == record["criterion"]), record["criterion"])
    data = {"set_id": record["set_id"], "prompt": record["enhanced_prompt"], "criterion": f"Criterion: {criterion}",
            "judges": judges_text(record["judges"]), "iteration": record["iteration"]}
    data |= {f"video_{i}": url for i, url in enumerate(video_urls)}
    task = {"data": data}
    pick = preferred(record["judges"])
    if pick is not None:
        task["predictions"] = [{"model_version": "judges", "score": pick[1], "result": [{
            "from_name": CHOICE, "to_name": FIRST_VIDEO, "type": "choices",
            "value": {"choices": [choice_name(pick[0])]}}]}]
    return task
