"""Files a user hands to a procedure, checked at the edge: one line naming the file and the fix."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from mora.media import VideoError, decode


class InputError(ValueError):
    """One line: which input is wrong and what to pass instead."""


def _existing(path: Path, what: str) -> Path:
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{what} '{path}' not found; pass an existing file")
    return path


def fit(image: Image.Image, width: int, height: int) -> Image.Image:
    """Scaled to cover ``width`` x ``height`` and centre-cropped: no stretching, no borders."""
    return ImageOps.fit(image, (width, height), method=Image.Resampling.LANCZOS)


def to_rgb(image: Image.Image) -> Image.Image:
    """Any mode as 8-bit RGB: palettes expanded, alpha laid on white, 16-bit and float rescaled."""
    if image.mode in ("I", "I;16", "I;16B", "I;16L", "F"):
        values = np.asarray(image, dtype=np.float64)
        span = values.max() - values.min()
        scaled = (values - values.min()) / span * 255 if span else np.zeros_like(values)
        image = Image.fromarray(scaled.astype(np.uint8))
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        back = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(back, rgba).convert("RGB")
    return image.convert("RGB")


def load_image(path: Path, width: int, height: int) -> Image.Image:
    path = _existing(path, "image")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)  # no half-way: too big is refused
            with Image.open(path) as img:
                img.load()
                image = to_rgb(img)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        size = str(exc).split(",")[0]  # "Image size (N pixels) exceeds limit of M pixels"
        raise InputError(f"image '{path}' is too large to decode safely ({size}: a decompression bomb?); "
                         "pass an image of a few megapixels at most") from None
    except (UnidentifiedImageError, OSError) as exc:
        raise InputError(f"image '{path}' cannot be read ({type(exc).__name__}); pass a PNG, JPEG or WebP file"
                         ) from None
    if min(image.size) < 8:
        raise InputError(f"image '{path}' is {image.size[0]}x{image.size[1]} pixels; pass one at least 8 on a side")
    return fit(image, width, height)


def load_video(path: Path) -> tuple[np.ndarray, float]:
    path = _existing(path, "video")
    try:
        return decode(path.read_bytes())
    except VideoError as exc:
        raise InputError(f"video '{path}': {exc}; pass an mp4/webm/mov file with at least one frame") from None


def fit_frames(frames: np.ndarray, width: int, height: int) -> np.ndarray:
    if frames.shape[1:3] == (height, width):
        return frames
    return np.stack([np.asarray(fit(Image.fromarray(f), width, height)) for f in frames])
