"""Contact sheets of a round's candidates: what reviewers and trainers look at first.

One row per candidate set: its prompt and decision, then each candidate as a few frames in time
order. The selected winner is framed in green, candidates that failed a gate in red; a set awaiting
review says so. Rounds of any size are paged into PNGs of a size a screen shows whole.
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from mora.atomic import write_atomic
from mora.media import decode_frames

THUMB = 96
FRAMES = 3
PAD = 6
TEXT_W = 260
SETS_PER_PAGE = 8
COLOURS = {"selected": (40, 180, 60), "gated": (210, 40, 40), "plain": (70, 70, 70)}
DECISION_COLOURS = {"accepted": (120, 220, 120), "needs_review": (240, 200, 80), "discarded": (230, 110, 110)}


def _font(size: int) -> ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def _sets(rows: list[dict]) -> list[list[dict]]:
    sets: dict[str, list[dict]] = {}
    for row in rows:
        sets.setdefault(row["set_id"], []).append(row)
    return [sorted(c, key=lambda r: r["candidate_index"]) for c in sets.values()]


def row_video(row: dict) -> bytes:
    return row["video"]


def contact_sheet_page(sets: list[list[dict]], page: int, pages: int,
                       video: Callable[[dict], bytes] = row_video) -> Image.Image:
    cands = max(len(s) for s in sets)
    cell_w, row_h, head = FRAMES * THUMB + 2 * PAD, THUMB + 2 * PAD + 18, 30
    sheet = Image.new("RGB", (TEXT_W + cands * (cell_w + PAD), head + len(sets) * (row_h + PAD)), (24, 24, 24))
    draw = ImageDraw.Draw(sheet)
    small, big = _font(12), _font(15)
    round_id = sets[0][0]["round_id"]
    title = f"{round_id}   page {page}/{pages}   green: selected   red: failed a gate"
    draw.text((PAD, 7), title, fill=(235, 235, 235), font=big)
    for r, cand_rows in enumerate(sets):
        y0 = head + r * (row_h + PAD)
        first = cand_rows[0]
        draw.text((PAD, y0), f"p{first['prompt_index']:05d}  {first['decision']}", font=big,
                  fill=DECISION_COLOURS.get(first["decision"], (230, 230, 230)))
        lines = textwrap.wrap(first["prompt"], 38)[:5] + [f"criterion: {first['criterion']}"]
        for i, line in enumerate(lines):
            draw.text((PAD, y0 + 20 + i * 14), line, fill=(200, 200, 200), font=small)
        for c, row in enumerate(cand_rows):
            x0 = TEXT_W + c * (cell_w + PAD)
            kind = "selected" if row["selected"] else "gated" if row["gate_failures"] else "plain"
            draw.rectangle([x0, y0, x0 + cell_w - 1, y0 + THUMB + 2 * PAD - 1], outline=COLOURS[kind], width=PAD - 2)
            for f, frame in enumerate(decode_frames(video(row), FRAMES, THUMB)):
                sheet.paste(frame, (x0 + PAD + f * THUMB, y0 + PAD))
            note = f"#{row['candidate_index']}" + (" winner" if row["selected"] else "") + (
                f" gate: {','.join(row['gate_failures'])}" if row["gate_failures"] else "")
            draw.text((x0 + 2, y0 + THUMB + 2 * PAD + 2), note, fill=COLOURS[kind] if kind != "plain" else
                      (200, 200, 200), font=small)
    return sheet


def write_contact_sheets(rows: list[dict], folder: Path, round_id: str, sets_per_page: int = SETS_PER_PAGE,
                         video: Callable[[dict], bytes] = row_video) -> list[Path]:
    """Every set, ``sets_per_page`` rows a page: ``ROUNDID-contact-sheet-NNN.png``; ``video(row)`` reads a
    candidate's video where rows come without theirs (a big round keeps them on disk)."""
    sets = _sets(rows)
    pages = [sets[i:i + sets_per_page] for i in range(0, len(sets), sets_per_page)]
    paths = []
    for n, page in enumerate(pages, start=1):
        sheet = contact_sheet_page(page, n, len(pages), video)
        path = Path(folder) / f"{round_id}-contact-sheet-{n:03d}.png"
        # fast compression: a round writes a page per 8 sets, and level 1 is about twice the bytes of level 6
        paths.append(write_atomic(path, lambda tmp, s=sheet: s.save(tmp, format="PNG", compress_level=1)))
    return paths
