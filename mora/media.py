"""Video bytes in and out, with PyAV (no torchvision, no ffmpeg binary)."""

from __future__ import annotations

import io
from fractions import Fraction

import av
import numpy as np
from av.video.reformatter import Interpolation
from PIL import Image

# YUV to RGB with rounding (swscale's default truncates: every decoded frame came out 0.85 of a level darker,
# so a loop that trains on the videos it stored darkened by that much per iteration, whatever it selected)
TO_RGB = Interpolation.BILINEAR | Interpolation.ACCURATE_RND | Interpolation.FULL_CHR_H_INT


class VideoError(ValueError):
    pass


def to_uint8(frames: np.ndarray) -> np.ndarray:
    """Pipelines return floats in [0, 1]; video files hold bytes."""
    if frames.dtype == np.uint8:
        return frames
    return (np.clip(frames, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def encode_mp4(frames: np.ndarray, fps: float, crf: int = 18) -> bytes:
    """H.264 mp4 from ``[T, H, W, 3]`` uint8 frames; the same frames always give the same bytes.

    The same frames fed at a different pace (a busy CPU) came out with different bytes in the first
    few frames now and then: x264's threaded lookahead and rate control saw them at different moments,
    and the frames carried no timestamps. One encoder thread and explicit timestamps remove both. On an
    AVX-512 CPU x264's assembly still gave other bytes depending on the process's memory layout (a round's
    first video, now and then); its cpu-independent mode gives the same bytes on every CPU (+10% encode
    time at 1024x576x25: 0.157 -> 0.172 s).
    """
    frames = to_uint8(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise VideoError(f"frames must have shape [T, H, W, 3], got {frames.shape}")
    buf = io.BytesIO()
    with av.open(buf, mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=Fraction(fps).limit_denominator(1000))
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": str(crf), "preset": "veryfast", "threads": "1",  # reproducible bytes
                          "x264-params": "cpu-independent=1"}
        for index, frame in enumerate(frames):
            picture = av.VideoFrame.from_ndarray(frame, format="rgb24")
            picture.pts = index  # explicit timestamps: x264's rate control reads them
            container.mux(stream.encode(picture))
        container.mux(stream.encode())
    return buf.getvalue()


def decode(data: bytes) -> tuple[np.ndarray, float]:
    """All frames as ``[T, H, W, 3]`` uint8 and the stream's frame rate."""
    if not data:
        raise VideoError("video is empty (0 bytes)")
    try:
        with av.open(io.BytesIO(data)) as container:
            stream = container.streams.video[0]
            fps = float(stream.average_rate or stream.guessed_rate or 0)
            frames = [f.reformat(format="rgb24", interpolation=TO_RGB).to_ndarray() for f in container.decode(stream)]
    except (av.error.FFmpegError, IndexError) as exc:
        raise VideoError(f"video cannot be decoded ({exc.__class__.__name__})") from None
    if not frames:
        raise VideoError("video has no frames")
    return np.stack(frames), fps


def decode_frames(data: bytes, count: int, size: int | None = None) -> list[Image.Image]:
    """``count`` frames spread evenly over a clip (as ``pick_frames``), ``size``×``size`` when given: only
    those frames are converted and scaled (by FFmpeg), which a sheet of many full-size clips needs."""
    if not data:
        raise VideoError("video is empty (0 bytes)")
    try:
        with av.open(io.BytesIO(data)) as container:
            stream = container.streams.video[0]
            total = stream.frames
            if not total:  # the container does not say: decode them all
                return [im.resize((size, size)) if size else im for im in pick_frames(decode(data)[0], count)]
            wanted = set(_spread(total, count).tolist())
            picked = [f.reformat(width=size, height=size, format="rgb24", interpolation=TO_RGB).to_image()
                      for i, f in enumerate(container.decode(stream)) if i in wanted]
    except (av.error.FFmpegError, IndexError) as exc:
        raise VideoError(f"video cannot be decoded ({exc.__class__.__name__})") from None
    if not picked:
        raise VideoError("video has no frames")
    return picked


def pick_frames(frames: np.ndarray, count: int) -> list[Image.Image]:
    """``count`` frames spread evenly over a clip, first and last included."""
    return [Image.fromarray(frames[i]) for i in _spread(len(frames), count)]


def _spread(total: int, count: int) -> np.ndarray:
    """``count`` frame indices spread evenly over ``total`` frames, first and last included."""
    return np.linspace(0, total - 1, num=min(count, total)).round().astype(int)
