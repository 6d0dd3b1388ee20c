"""Multimodal processors that work with and without torchvision.

transformers' video processors need torchvision. Where it imports, the model's own processor is used
(native video input). Where it does not (the CPU machines), the same processor class is rebuilt without
its video part: frames are then given as images, which the image processors handle with PIL.
"""

from __future__ import annotations

import functools
import importlib.util
import inspect
import json
from pathlib import Path


@functools.cache
def has_torchvision() -> bool:
    if importlib.util.find_spec("torchvision") is None:
        return False
    try:
        import torchvision  # noqa: F401
    except Exception:  # a broken build raises at import time (missing operators)
        return False
    return True


_UNSET = object()


@functools.cache
def image_only(processor_cls: type) -> type:
    """A subclass of ``processor_cls`` without a video processor attribute, under the same name.

    ``ProcessorMixin`` reads the accepted arguments from ``__init__.__code__``, so the constructor is
    generated with the parent's parameters minus ``video_processor``.
    """
    params = [name for name, p in inspect.signature(processor_cls.__init__).parameters.items()
              if name not in ("self", "video_processor") and p.kind is p.POSITIONAL_OR_KEYWORD]
    source = (
        f"def __init__(self, {', '.join(f'{p}=_UNSET' for p in params)}, **kwargs):\n"
        f"    given = {{k: v for k, v in dict({', '.join(f'{p}={p}' for p in params)}).items() if v is not _UNSET}}\n"
        f"    base.__init__(self, video_processor=None, **given, **kwargs)\n"
    )
    namespace = {"base": processor_cls, "_UNSET": _UNSET}
    exec(source, namespace)  # noqa: S102 - a constructor built from the library's own signature
    return type(processor_cls.__name__, (processor_cls,),
                {"__init__": namespace["__init__"], "__module__": processor_cls.__module__})


def load_processor(path_or_id: str, revision: str | None = None):
    """The model's processor, native when torchvision imports, image-only otherwise."""
    import transformers

    if has_torchvision():
        return transformers.AutoProcessor.from_pretrained(path_or_id, revision=revision)
    local = Path(path_or_id) / "processor_config.json"
    if local.exists():
        name = json.loads(local.read_text())["processor_class"]
    else:
        from huggingface_hub import hf_hub_download

        name = json.loads(Path(hf_hub_download(path_or_id, "processor_config.json", revision=revision)).read_text())[
            "processor_class"
        ]
    return image_only(getattr(transformers, name)).from_pretrained(path_or_id, revision=revision)
