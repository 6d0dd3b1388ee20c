"""``mora make ...``: the six procedures from the command line, each writing an mp4 and its sidecar."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape
from rich.prompt import Prompt

make_app = typer.Typer(no_args_is_help=True, help="Make one video with a procedure (mp4 + JSON sidecar).")
console = Console()

CONFIG = typer.Option(Path("configs/tiny.yaml"), "--config", "-c", help="YAML preset")
SET = typer.Option([], "--set", help="override a field: generation.num_frames=25 (repeatable)")
SEED = typer.Option(0, help="seed; the same seed on the same machine gives the same frames")
INTERACTIVE = typer.Option(False, "--interactive", "-i", help="show each stage; accept, regenerate or adjust")
DURATION = typer.Option(None, "--duration", help="seconds (the paper shows ~12); more segments are chained "
                                                          "to reach it")
CHAINING = typer.Option(None, help="last-frame (the paper; default procedures.chaining) or clip (the last frames "
                                   "condition the next segment)")


def ask(stage: str, path: Path) -> tuple[str, str | None]:
    """The person at the terminal decides; at most three tries per stage."""
    console.print(f"[bold]{stage}[/]: {path}")
    choice = Prompt.ask("accept, regenerate, or adjust by instruction", choices=["a", "r", "e"], default="a",
                        console=console)
    if choice == "e":
        return "adjust", Prompt.ask("instruction (e.g. make it snow)", console=console)
    return {"a": "accept", "r": "regenerate"}[choice], None


def _run(config: Path, set_: list[str], out: Path, make: Callable, interactive: bool = False) -> None:
    from mora.agents.loading import ModelLoadError
    from mora.config import ConfigError, load_config, parse_overrides
    from mora.preflight import preflight
    from mora.procedures.inputs import InputError
    from mora.procedures.toolbox import Toolbox, write_made

    try:
        cfg = load_config(config, parse_overrides(set_))
        preflight(cfg)
        tools = Toolbox(cfg)
        if interactive:  # no spinner over the questions
            made = make(tools)
        else:
            with console.status("making the video (models load once, then each stage runs)"):
                made = make(tools)
        video, sidecar = write_made(made, out)
    except (ConfigError, InputError, ModelLoadError) as exc:
        Console(stderr=True).print(f"[bold red]error:[/] {escape(str(exc))}", soft_wrap=True, highlight=False)
        raise typer.Exit(2) from None
    frames, height, width = made.frames.shape[:3]
    console.print(f"{made.record['procedure']}: {frames} frames, {width}x{height} at {made.fps:g} fps -> {video}")
    console.print(f"sidecar: {sidecar}")


def _approver(interactive: bool):
    return ask if interactive else None


@make_app.command("t2v")
def t2v(prompt: str = typer.Option(..., help="what the video shows"), out: Path = typer.Option(..., help="mp4"),
        duration: float | None = DURATION, chaining: str | None = CHAINING, seed: int = SEED,
        interactive: bool = INTERACTIVE, config: Path = CONFIG, set_: list[str] = SET) -> None:
    """Text to video: enhanced prompt, first frame, animation, chained segments."""
    from mora.procedures.single import text_to_video

    _run(config, set_, out, lambda t: text_to_video(t, prompt, seed, duration, chaining, _approver(interactive)),
         interactive)


@make_app.command("i2v")
def i2v(image: Path = typer.Option(..., help="first frame"), prompt: str = typer.Option("", help="motion"),
        out: Path = typer.Option(..., help="mp4"), duration: float | None = DURATION, chaining: str | None = CHAINING,
        seed: int = SEED, interactive: bool = INTERACTIVE, config: Path = CONFIG, set_: list[str] = SET) -> None:
    """Image to video: the image and text through the text-to-image agent, then animated
    (--set procedures.image_to_video=direct animates the image as it is)."""
    from mora.procedures.single import image_to_video

    _run(config, set_, out, lambda t: image_to_video(t, image, prompt, seed, _approver(interactive),
                                                     duration_s=duration, chaining=chaining), interactive)


@make_app.command("extend")
def extend_cmd(video: Path = typer.Option(..., help="video to continue"), prompt: str = typer.Option(""),
               out: Path = typer.Option(..., help="mp4"),
               segments: int = typer.Option(1, help="segments to add (1 to 64: each continues from the last)"),
               duration: float | None = typer.Option(None, "--duration", help="seconds the result should last: as "
                                                     "many segments as that takes (overrides --segments)"),
               chaining: str | None = CHAINING, seed: int = SEED, config: Path = CONFIG, set_: list[str] = SET) -> None:
    """Extend a video by whole segments."""
    from mora.procedures.extend import extend

    _run(config, set_, out, lambda t: extend(t, video, prompt, seed, segments, chaining, duration))


@make_app.command("edit")
def edit_cmd(video: Path = typer.Option(..., help="video to edit"),
             instruction: str = typer.Option(..., help="e.g. make it winter"),
             out: Path = typer.Option(..., help="mp4"), prompt: str | None = typer.Option(None),
             duration: float | None = DURATION, chaining: str | None = CHAINING,
             seed: int = SEED, interactive: bool = INTERACTIVE, config: Path = CONFIG, set_: list[str] = SET) -> None:
    """Video-to-video editing: the first frame edited by instruction, then animated again."""
    from mora.procedures.single import edit_video

    _run(config, set_, out, lambda t: edit_video(t, video, instruction, seed, prompt, _approver(interactive),
                                                 duration_s=duration, chaining=chaining), interactive)


@make_app.command("connect")
def connect_cmd(first: Path = typer.Option(...), second: Path = typer.Option(...),
                prompt: str = typer.Option("", help="what happens in between"),
                out: Path = typer.Option(..., help="mp4"), seed: int = SEED, config: Path = CONFIG,
                set_: list[str] = SET) -> None:
    """Connect two videos with a generated transition."""
    from mora.procedures.connect import connect_videos

    _run(config, set_, out, lambda t: connect_videos(t, first, second, prompt, seed))


@make_app.command("digital-world")
def digital_world_cmd(out: Path = typer.Option(..., help="mp4"), prompt: str | None = typer.Option(None),
                      image: Path | None = typer.Option(None), duration: float | None = DURATION,
                      chaining: str | None = CHAINING, seed: int = SEED, interactive: bool = INTERACTIVE,
                      config: Path = CONFIG, set_: list[str] = SET) -> None:
    """A scene as a digital world: "In digital world style" on the animation prompt
    (--set procedures.digital_world=restyle restyles the first frame instead)."""
    from mora.procedures.single import digital_world

    _run(config, set_, out, lambda t: digital_world(t, seed, prompt=prompt, image=image,
                                                    approver=_approver(interactive), duration_s=duration,
                                                    chaining=chaining), interactive)
