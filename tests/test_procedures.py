"""The six procedures on tiny models of every family: frames, sizes, sidecars, seeds, people, bad input."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mora.config import ConfigError, load_config
from mora.media import decode, encode_mp4
from mora.procedures.connect import connect_videos
from mora.procedures.extend import extend
from mora.procedures.inputs import InputError, load_image
from mora.procedures.single import digital_world, edit_video, image_to_video, text_to_video
from mora.procedures.toolbox import MAX_TRIES, Toolbox, write_made

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def _preset(name, tiny_models, tmp_path, **overrides):
    text = (REPO / "configs" / f"{name}.yaml").read_text().replace(".mora/models/tiny", str(tiny_models))
    path = tmp_path / f"{name}.yaml"
    path.write_text(text)
    return load_config(path, overrides)


@pytest.fixture(scope="module")
def tools(tiny_models, tmp_path_factory):
    return Toolbox(_preset("tiny", tiny_models, tmp_path_factory.mktemp("preset")))


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    """Two input videos of the preset's size with smooth motion, and a still image."""
    out = tmp_path_factory.mktemp("inputs")
    t = np.arange(17)[:, None, None, None]
    x = np.arange(64)[None, None, :, None]
    a = ((x * 3 + t * 4 + np.array([0, 60, 120])) % 256).astype(np.uint8) * np.ones((17, 64, 64, 3), np.uint8)
    (out / "a.mp4").write_bytes(encode_mp4(a, 8))
    (out / "b.mp4").write_bytes(encode_mp4(255 - a, 8))
    Image.fromarray(a[0]).save(out / "still.png")
    return out


def _check_file(made, path, frames, fps=8.0):
    video, sidecar = write_made(made, path)
    decoded, got_fps = decode(video.read_bytes())
    assert decoded.shape == (frames, 64, 64, 3) and got_fps == pytest.approx(fps)
    record = json.loads(sidecar.read_text())
    for key in ("procedure", "models", "seeds", "steps", "size", "timings_s", "runtime", "created_at", "output"):
        assert key in record, key
    assert record["output"]["frames"] == frames and len(record["output"]["sha256"]) == 64
    assert all(m["id"] for m in record["models"].values())
    return record


def test_long_text_to_video_chains_each_segment_from_the_last_frame_by_default(tools, tmp_path):
    made = text_to_video(tools, "a red fox runs through snow", seed=3, duration_s=12)
    assert len(made.frames) >= 12 * 8
    record = _check_file(made, tmp_path / "t2v.mp4", len(made.frames))
    assert record["chaining"] == "last-frame" and record["segment_agent"] == "image_to_video"
    assert "connect" not in record["models"] and set(record["models"]) >= {"text_to_image", "image_to_video"}
    starts = record["segment_starts"]
    assert starts == [0] + [17 + 16 * k for k in range(5)] and len(made.frames) == 17 + 5 * 16
    for k, start in enumerate(starts[1:]):  # each segment is the image-to-video agent on the frame before it
        again = tools.animate(Image.fromarray(made.frames[start - 1]), record["enhanced_prompt"],
                              record["seeds"]["video"] + 1 + k)
        assert np.array_equal(made.frames[start:start + 16], again[1:])


def test_clip_chaining_is_an_option_through_the_connect_agent(tools, tmp_path):
    made = text_to_video(tools, "a red fox runs through snow", seed=3, duration_s=4, chaining="clip")
    assert len(made.frames) >= 4 * 8
    record = _check_file(made, tmp_path / "t2v.mp4", len(made.frames))
    assert set(record["models"]) >= {"text_to_image", "image_to_video", "connect", "prompt"}
    assert record["chaining"] == "clip" and len(record["drift"]) == len(record["segment_starts"]) >= 2
    assert record["segment_agent"] == "connect"
    assert record["drift"][0] == {"segment": 0, "frames": 17, "colour_drift": 0.0, "sharpness_ratio": 1.0}


def test_the_same_seed_gives_identical_frames_and_another_seed_does_not(tools):
    one = text_to_video(tools, "a paper boat", seed=5)
    two = text_to_video(tools, "a paper boat", seed=5)
    other = text_to_video(tools, "a paper boat", seed=6)
    assert np.array_equal(one.frames, two.frames) and not np.array_equal(one.frames, other.frames)


def test_image_to_video_feeds_the_image_and_text_through_the_text_to_image_agent(tools, clips, tmp_path):
    made = image_to_video(tools, clips / "still.png", "waves", seed=1)
    record = _check_file(made, tmp_path / "i2v.mp4", 17)
    assert record["image_to_video"] == "text-to-image" and record["seeds"] == {"first_frame": 1, "video": 1}
    assert list(record["models"]) == ["text_to_image", "image_to_video"]
    still = load_image(clips / "still.png", 64, 64)
    frame = tools.first_frame_from(still, "waves", 1)  # the text-to-image agent's img2img form
    assert np.abs(np.asarray(frame, int) - np.asarray(still, int)).mean() > 1.0
    assert np.array_equal(made.frames, tools.animate(frame, "waves", 1))
    assert not np.array_equal(made.frames, tools.animate(still, "waves", 1))


def test_image_to_video_directly_from_the_image_is_an_option(tools, clips, tmp_path):
    made = image_to_video(tools, clips / "still.png", "waves", seed=1, how="direct")
    record = _check_file(made, tmp_path / "i2v.mp4", 17)
    assert record["inputs"]["image"].endswith("still.png") and list(record["models"]) == ["image_to_video"]
    assert np.array_equal(made.frames, tools.animate(load_image(clips / "still.png", 64, 64), "waves", 1))


@pytest.mark.parametrize("chaining, new_per_segment", [("clip", 17 - 5), ("last-frame", 17 - 1)])
def test_extend_adds_whole_segments(tools, clips, tmp_path, chaining, new_per_segment):
    made = extend(tools, clips / "a.mp4", "more", seed=2, segments=2, chaining=chaining)
    record = _check_file(made, tmp_path / "ext.mp4", 17 + 2 * new_per_segment)
    assert record["segment_starts"] == [0, 17, 17 + new_per_segment]
    source, _ = decode((clips / "a.mp4").read_bytes())
    assert np.array_equal(made.frames[:17], source)  # the original is kept frame for frame


def test_every_procedure_that_makes_its_own_length_chains_to_a_duration(tools, clips, tmp_path):
    """--duration (and mora eval's eval.duration_s) works for i2v, edit and digital-world as for t2v: the
    same last-frame chaining; extend adds as many segments as reach it."""
    made = {"i2v": image_to_video(tools, clips / "still.png", "waves", seed=1, duration_s=5),
            "edit": edit_video(tools, clips / "a.mp4", "make it winter", seed=4, duration_s=5),
            "dw": digital_world(tools, seed=2, prompt="a castle", duration_s=5)}
    for name, m in made.items():  # 5 s at 8 fps = 40 frames: 17, then ceil((40 - 17) / 16) = 2 more segments
        record = _check_file(m, tmp_path / f"{name}.mp4", 17 + 2 * 16)
        assert record["segment_starts"] == [0, 17, 33] and record["segment_agent"] == "image_to_video", name
        assert record["duration_s"] == 5 and len(record["drift"]) == 3
    short = image_to_video(tools, clips / "still.png", "waves", seed=1)
    assert np.array_equal(made["i2v"].frames[:17], short.frames)  # the first segment is the one-segment video
    longer = extend(tools, clips / "a.mp4", "more", seed=2, duration_s=5)
    assert longer.record["segment_starts"] == [0, 17, 33] and len(longer.frames) == 49
    assert len(extend(tools, clips / "a.mp4", "more", seed=2, duration_s=1).record["segment_starts"]) == 2


def test_edit_changes_the_first_frame(tools, clips, tmp_path):
    made = edit_video(tools, clips / "a.mp4", "make it winter", seed=4)
    record = _check_file(made, tmp_path / "edit.mp4", 17)
    source, _ = decode((clips / "a.mp4").read_bytes())
    assert record["first_frame_change"] > 1.0
    assert np.abs(made.frames[0].astype(int) - source[0].astype(int)).mean() > 1.0


def test_connect_is_first_then_transition_then_second(tools, clips, tmp_path):
    made = connect_videos(tools, clips / "a.mp4", clips / "b.mp4", "a smooth fade", seed=7)
    record = _check_file(made, tmp_path / "connect.mp4", len(made.frames))
    parts = record["parts"]
    assert parts == {"first_frames": 17, "transition_frames": 15, "second_frames": 17}
    a, _ = decode((clips / "a.mp4").read_bytes())
    b, _ = decode((clips / "b.mp4").read_bytes())
    assert len(made.frames) == 17 + 15 + 17
    assert np.array_equal(made.frames[:17], a) and np.array_equal(made.frames[-17:], b)


def test_digital_world_by_the_papers_suffix_on_the_image_to_video_prompt(tools, clips, tmp_path):
    made = digital_world(tools, seed=8, prompt="a castle on a hill")
    record = _check_file(made, tmp_path / "dw.mp4", 17)
    assert record["digital_world"] == "suffix" and record["style"] == "In digital world style"
    assert set(record["models"]) == {"text_to_image", "image_to_video"}  # no restyling edit
    first = tools.first_frame("a castle on a hill", 8)
    assert np.array_equal(made.frames, tools.animate(first, "a castle on a hill. In digital world style", 8))
    assert not np.array_equal(made.frames, tools.animate(first, "a castle on a hill", 8))
    from_image = digital_world(tools, seed=8, image=clips / "still.png")
    assert list(from_image.record["models"]) == ["image_to_video"]
    assert np.array_equal(from_image.frames, tools.animate(load_image(clips / "still.png", 64, 64),
                                                           "the scene. In digital world style", 8))


def test_digital_world_by_restyling_is_an_option(tools, clips, tmp_path):
    made = digital_world(tools, seed=8, prompt="a castle on a hill", how="restyle")
    record = _check_file(made, tmp_path / "dw.mp4", 17)
    assert "voxel" in record["style"] and set(record["models"]) == {"text_to_image", "image_to_image",
                                                                    "image_to_video"}
    from_image = digital_world(tools, seed=8, image=clips / "still.png", how="restyle")
    assert "text_to_image" not in from_image.record["models"]


def test_the_paper_first_system_families_sdxl_instruct_pix2pix_svd(tiny_models, clips, tmp_path):
    svd = Toolbox(_preset("tiny-svd", tiny_models, tmp_path, **{"generation.num_frames": "9"}))
    made = text_to_video(svd, "a lighthouse at night", seed=1)
    assert made.frames.shape == (9, 64, 64, 3)
    assert type(svd.image_to_video.pipe).__name__ == "StableVideoDiffusionPipeline"
    assert type(svd.text_to_image.pipe).__name__ == "StableDiffusionXLPipeline"
    edited = edit_video(svd, clips / "a.mp4", "make it night", seed=2)
    assert type(svd.image_to_image.pipe).__name__ == "StableDiffusionInstructPix2PixPipeline"
    assert edited.record["first_frame_change"] > 1.0 and edited.frames.shape == (9, 64, 64, 3)
    with pytest.raises(ConfigError, match="procedures.digital_world: suffix .* StableVideoDiffusionPipeline"):
        digital_world(svd, seed=1, prompt="a lighthouse", how="suffix")  # SVD reads no text: the preset restyles


def test_interactive_stages_regenerate_adjust_and_stop_at_three_tries(tools, tmp_path):
    answers = iter([("regenerate", None), ("adjust", "make it snow"), ("accept", None), ("regenerate", None),
                    ("regenerate", None), ("regenerate", None)])
    seen = []

    def person(stage, path):
        seen.append((stage, path))
        assert path.exists()
        return next(answers)

    made = text_to_video(tools, "a fox", seed=10, approver=person, workdir=tmp_path)
    log = made.record["stages"]
    assert [(s["stage"], s["action"]) for s in log] == [
        ("first-frame", "regenerate"), ("first-frame", "adjust"), ("first-frame", "accept"),
        ("video", "regenerate"), ("video", "regenerate"), ("video", "regenerate")]
    assert log[1]["seed"] == 11 and log[1]["instruction"] == "make it snow"
    assert sum(1 for s in log if s["stage"] == "video") == MAX_TRIES  # the third video is kept
    assert made.record["seeds"] == {"first_frame": 11, "video": 12}
    assert [p.suffix for _, p in seen] == [".png"] * 3 + [".mp4"] * 3


@pytest.mark.parametrize("mode", ["RGBA", "L", "P", "I;16", "CMYK", "1"])
def test_odd_image_modes_and_sizes_are_converted(tmp_path, mode):
    path = tmp_path / f"odd-{mode.replace(';', '')}.png" if mode != "CMYK" else tmp_path / "odd.jpg"
    Image.new("RGB", (37, 101), (200, 30, 90)).convert(mode).save(path)
    image = load_image(path, 64, 48)
    assert image.mode == "RGB" and image.size == (64, 48)


def test_bad_inputs_fail_in_one_line(tools, clips, tmp_path):
    (tmp_path / "empty.mp4").write_bytes(b"")
    (tmp_path / "junk.mp4").write_bytes(b"not a video at all" * 10)
    (tmp_path / "junk.png").write_bytes(b"\x89PNG but not really")
    Image.new("RGB", (4, 4)).save(tmp_path / "tiny.png")
    small = encode_mp4(np.zeros((3, 32, 48, 3), np.uint8), 8)
    (tmp_path / "small.mp4").write_bytes(small)
    cases = [
        (lambda: image_to_video(tools, tmp_path / "missing.png", "", 0), "not found"),
        (lambda: image_to_video(tools, tmp_path / "junk.png", "", 0), "cannot be read"),
        (lambda: image_to_video(tools, tmp_path / "tiny.png", "", 0), "at least 8"),
        (lambda: extend(tools, tmp_path / "empty.mp4", "", 0), "empty"),
        (lambda: extend(tools, tmp_path / "junk.mp4", "", 0), "cannot be decoded"),
        (lambda: extend(tools, tmp_path / "small.mp4", "", 0, chaining="clip"), "has 3 frames.*needs at least 5"),
        (lambda: connect_videos(tools, clips / "a.mp4", tmp_path / "small.mp4", "", 0), "differ in size"),
        (lambda: extend(tools, clips / "a.mp4", "", 0, chaining="spline"), "chaining 'spline' is unknown"),
    ]
    for call, message in cases:
        with pytest.raises(InputError, match=message) as err:
            call()
        assert "\n" not in str(err.value)
    with pytest.raises(ConfigError, match="generation.connect"):
        extend(Toolbox(load_config(REPO / "configs" / "tiny.yaml", {"generation.connect": ""})), clips / "a.mp4",
               "", 0, chaining="clip")


def test_the_cli_writes_the_video_and_its_sidecar_and_refuses_bad_input(tiny_models, clips, tmp_path):
    config = _preset("tiny", tiny_models, tmp_path).model_dump(mode="json")
    import yaml

    (tmp_path / "p.yaml").write_text(yaml.safe_dump(config))
    env = {**os.environ, "COLUMNS": "200"}

    def mora(*args):
        return subprocess.run([sys.executable, "-m", "mora.cli", "make", *args, "--config", str(tmp_path / "p.yaml")],
                              capture_output=True, text=True, env=env, timeout=600, cwd=REPO)

    out = mora("connect", "--first", str(clips / "a.mp4"), "--second", str(clips / "b.mp4"), "--out",
               str(tmp_path / "c.mp4"))
    assert out.returncode == 0, out.stderr[-2000:]
    assert decode((tmp_path / "c.mp4").read_bytes())[0].shape == (49, 64, 64, 3)
    assert json.loads((tmp_path / "c.json").read_text())["procedure"] == "connect"
    bad = mora("extend", "--video", str(tmp_path / "nothing.mp4"), "--out", str(tmp_path / "x.mp4"))
    lines = [line for line in (bad.stdout + bad.stderr).splitlines() if line.strip()]
    assert bad.returncode == 2 and len(lines) == 1 and "not found" in lines[0] and "Traceback" not in bad.stderr


def test_a_procedure_runs_as_a_prefect_flow(tiny_models, clips, tmp_path):
    from mora.flows.make import make_image_to_video

    config = tmp_path / "tiny.yaml"
    config.write_text((REPO / "configs" / "tiny.yaml").read_text().replace(".mora/models/tiny", str(tiny_models)))
    result = make_image_to_video(str(clips / "still.png"), "waves", str(tmp_path / "f.mp4"), seed=1,
                                 config_path=str(config))
    seeds = json.loads(Path(result["sidecar"]).read_text())["seeds"]
    assert Path(result["video"]).exists() and seeds == {"first_frame": 1, "video": 1}


def test_wan_image_to_video_and_first_last_frame_connect(tiny_models, clips, tmp_path):
    overrides = {"generation.image_to_video.id": str(tiny_models / "wan-i2v"),
                 "generation.connect.id": str(tiny_models / "wan-flf2v")}
    wan = Toolbox(_preset("tiny", tiny_models, tmp_path, **overrides))
    made = image_to_video(wan, clips / "still.png", "waves", seed=1, how="direct")
    assert made.frames.shape == (17, 64, 64, 3)
    assert type(wan.image_to_video.pipe).__name__ == "WanImageToVideoPipeline"
    g, still = wan.gen, load_image(clips / "still.png", 64, 64)
    two = wan.image_to_video.animate([still] * 2, "waves", [1, 2], 17, 64, 64, g.video_steps, g.video_guidance, g.fps)
    assert np.array_equal(two[0], made.frames) and not np.array_equal(two[0], two[1])  # own seed per candidate
    joined = connect_videos(wan, clips / "a.mp4", clips / "b.mp4", "a fade", seed=3)
    assert joined.record["parts"]["transition_frames"] == 15 and len(joined.frames) == 49
    assert np.array_equal(extend(wan, clips / "a.mp4", "", 0, chaining="last-frame").frames[:17],
                          decode((clips / "a.mp4").read_bytes())[0])
    with pytest.raises(ConfigError, match="generation.connect.*cannot condition on a clip.*last-frame"):
        extend(wan, clips / "a.mp4", "", 0, chaining="clip")


def test_an_interactive_flow_pauses_for_a_person_and_resumes_with_their_answers(tiny_models, clips, tmp_path):
    """A real Prefect server; the flow runs in another process, the answers come through the API."""
    import time

    import httpx

    from tests.conftest import SLOW_S, free_port

    port = free_port()
    api = f"http://127.0.0.1:{port}/api"
    env = {**os.environ, "PREFECT_HOME": str(tmp_path / "prefect"), "PREFECT_API_URL": api,
           "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "PREFECT_LOGGING_LEVEL": "WARNING"}
    prefect = Path(sys.executable).parent / "prefect"
    server = subprocess.Popen([str(prefect), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    config = tmp_path / "tiny.yaml"
    config.write_text((REPO / "configs" / "tiny.yaml").read_text().replace(".mora/models/tiny", str(tiny_models)))
    script = ("from mora.flows.make import make_image_to_video; "
              f"make_image_to_video({str(clips / 'still.png')!r}, 'waves', {str(tmp_path / 'i.mp4')!r}, seed=4, "
              f"config_path={str(config)!r}, overrides={{'procedures.image_to_video': 'direct'}}, "
              "interactive=True)")
    runner, answered = None, set()
    try:
        deadline = time.monotonic() + 600  # bounds on waiting for events, not paces: a busy machine is slow
        while True:
            try:
                if httpx.get(f"{api}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "prefect server did not start"
            time.sleep(0.3)
        runner = subprocess.Popen([sys.executable, "-c", script], env=env, cwd=REPO, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, text=True)
        for answer in ({"action": "regenerate"}, {"action": "accept"}):
            deadline = time.monotonic() + 600
            while True:  # a pause not answered yet (the one just answered may still read PAUSED for a moment)
                paused = [run for run in httpx.post(f"{api}/flow_runs/filter", timeout=SLOW_S, json={
                    "flow_runs": {"state": {"type": {"any_": ["PAUSED"]}}}}).json()
                    if run["state"]["id"] not in answered]
                if paused:
                    break
                assert runner.poll() is None, runner.stdout.read()[-3000:]
                assert time.monotonic() < deadline, "the flow never paused"
                time.sleep(0.3)
            reply = httpx.post(f"{api}/flow_runs/{paused[0]['id']}/resume", json={"run_input": answer},
                               timeout=SLOW_S)
            assert reply.status_code < 300, reply.text
            answered.add(paused[0]["state"]["id"])
        assert runner.wait(timeout=600) == 0, runner.stdout.read()[-3000:]
    finally:
        if runner and runner.poll() is None:
            runner.kill()
        server.terminate()
        server.wait(timeout=30)
    record = json.loads((tmp_path / "i.json").read_text())
    assert [(s["stage"], s["action"]) for s in record["stages"]] == [("video", "regenerate"), ("video", "accept")]
    assert record["seeds"] == {"video": 5}


def test_interactive_flows_without_a_server_say_how_to_get_one(monkeypatch):
    from mora.flows.make import paused_for_people

    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    assert paused_for_people(False) is None
    with pytest.raises(ConfigError, match="prefect server start.*PREFECT_API_URL"):
        paused_for_people(True)


def test_the_cli_asks_the_person_at_the_terminal(tiny_models, clips, tmp_path):
    config = tmp_path / "tiny.yaml"
    config.write_text((REPO / "configs" / "tiny.yaml").read_text().replace(".mora/models/tiny", str(tiny_models)))
    out = subprocess.run([sys.executable, "-m", "mora.cli", "make", "edit", "--video", str(clips / "a.mp4"),
                          "--instruction", "make it snow", "--out", str(tmp_path / "e.mp4"), "--interactive",
                          "--config", str(config)], input="e\nbrighter sky\na\nr\na\n", capture_output=True,
                         text=True, cwd=REPO, env={**os.environ, "COLUMNS": "200"}, timeout=600)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    stages = json.loads((tmp_path / "e.json").read_text())["stages"]
    assert [(s["stage"], s["action"], s["instruction"]) for s in stages] == [
        ("edited-frame", "adjust", "brighter sky"), ("edited-frame", "accept", None),
        ("video", "regenerate", None), ("video", "accept", None)]
