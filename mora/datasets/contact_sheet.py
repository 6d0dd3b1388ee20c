"""A contact sheet of a round's candidates: what reviewers and trainers look at first.

One column per candidate set, one row per candidate with a few frames each; the selected winner is
framed in green, candidates that failed a gate in red, sets awaiting review are marked.
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageDraw

from mora.atomic import write_atomic
from mora.media import decode, pick_frames

THUMB = 64
PAD = 4
LABEL = 14
MAX_SETS = 16  # sets on one sheet
COLOURS = {"selected": (40, 180, 60), "gated": (210, 40, 40), "plain": (60, 60, 60)}


def contact_sheet(rows: list[dict], frames_per_candidate: int = 3, max_sets: int = MAX_SETS) -> Image.Image:
    sets: dict[str, list[dict]] = {}
    for row in rows:
        sets.setdefault(row["set_id"], []).append(row)
    chosen = list(sets.values())[:max_sets]
    cands = max(len(c) for c in chosen)
    block_w = frames_per_candidate * THUMB + 2 * PAD
    sheet = Image.new("RGB", (len(chosen) * block_w, LABEL + cands * (THUMB + 2 * PAD)), (20, 20, 20))
    draw = ImageDraw.Draw(sheet)
    for col, cand_rows in enumerate(chosen):
        x0 = col * block_w
        first = cand_rows[0]
        draw.text((x0 + PAD, 1), f"p{first['prompt_index']} {first['decision']}", fill=(230, 230, 230))
        for r, row in enumerate(sorted(cand_rows, key=lambda c: c["candidate_index"])):
            y0 = LABEL + r * (THUMB + 2 * PAD)
            kind = "selected" if row["selected"] else "gated" if row["gate_failures"] else "plain"
            draw.rectangle([x0, y0, x0 + block_w - 1, y0 + THUMB + 2 * PAD - 1], outline=COLOURS[kind], width=PAD - 1)
            for f, frame in enumerate(pick_frames(decode(row["video"])[0], frames_per_candidate)):
                frame.thumbnail((THUMB, THUMB))
                sheet.paste(frame, (x0 + PAD + f * THUMB, y0 + PAD))
    return sheet


def write_contact_sheet(rows: list[dict], path: Path) -> Path:
    sheet = contact_sheet(rows)
    return write_atomic(path, lambda tmp: sheet.save(tmp, format="PNG"))
