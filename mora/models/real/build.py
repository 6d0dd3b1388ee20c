"""``mora models make-random``: a preset's models at their real size, with random weights, as local folders.

One folder per model under DIR (``DIR/qwen2.5-7b-instruct``, ``DIR/stable-diffusion-3-medium``, ...), laid
out as its published repository is (``model_index.json`` and component folders, or ``config.json``, the
tokenizer and processor files and sharded safetensors). Components that several pipelines share (the
T5-XXL encoder of SD3, SD3.5 and LTX-Video, the CLIP text encoders of SD3 and SD3.5, their tokenizers)
are built once under ``DIR/_shared`` and linked in. A folder counts as built once its marker exists, so
presets that name the same model share its folder, and a second run skips it. ``overrides`` gives the
``--set`` pairs that point a preset's ids at the folders.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch

from mora.config import ConfigError, RoundConfig
from mora.models.real.catalogue import BY_HUB_ID, Part, RealModel, Weights
from mora.models.real.parts import MAKERS
from mora.models.real.stream import meta_model, write_weights

MARKER = ".mora-random.json"
DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}
# the block stacks a cut copy keeps the first layers of (the step runs on them; the meta trace covers the rest)
DEPTH_FIELDS = {"WanTransformer3DModel": "num_layers", "SD3Transformer2DModel": "num_layers",
                "LTXVideoTransformer3DModel": "num_layers"}


@dataclass(frozen=True)
class Use:
    """Where a preset names a model: the ``--set`` field of its id, and whether mora loads it in process."""

    field: str
    model: RealModel
    in_process: bool = True


def preset_models(config: RoundConfig) -> list[Use]:
    """Every model a preset names that the catalogue knows, by the field that names it (in preset order)."""
    gen, p = config.generation, config.prompts
    refs = [("prompts.model.id", p.model, p.backend == "transformers")]
    refs += [(f"generation.{role}.id", getattr(gen, role), True)
             for role in ("text_to_image", "image_to_video", "image_to_image", "connect")]
    refs += [(f"judges.{i}.model.id", j.model, j.backend == "transformers") for i, j in enumerate(config.judges)]
    ev = config.eval
    for name in ("object_encoder", "clip", "aesthetic_clip", "aesthetic_head", "video_encoder", "text_embedder"):
        refs.append((f"eval.{name}.id", getattr(ev, name), True))
    refs += [(f"eval.{name}.model.id", getattr(ev, name).model, True) for name in ("image_captioner",
                                                                                  "video_captioner")]
    uses = []
    for field, ref, in_process in refs:
        if ref is None:
            continue
        model = BY_HUB_ID.get(ref.id)
        if model is None:
            raise ConfigError(f"config field '{field}': '{ref.id}' is not in mora's real-size catalogue "
                              "(mora/models/real/catalogue.py); add its published configuration there")
        uses.append(Use(field, model, in_process))
    return uses


def unique_models(uses: list[Use]) -> list[RealModel]:
    return list({u.model.name: u.model for u in uses}.values())


def overrides(uses: list[Use], root: Path) -> dict[str, str]:
    """``--set`` pairs that point every id at its random-weight folder."""
    return {u.field: str(root / u.model.name) for u in uses}


def checkpoint_bytes(model: RealModel, dtype: torch.dtype, layers: int | None = None) -> int:
    """Bytes of the model's weights in ``dtype`` (shared components counted in full)."""
    size = torch.empty((), dtype=dtype).element_size()
    total = 0
    for spec in model.weights.values():
        meta = meta_model(spec, **_depth(spec, layers))
        total += sum(t.numel() for t in meta.state_dict().values() if t.is_floating_point()) * size
    return total


def _depth(spec: Weights, layers: int | None) -> dict:
    field = DEPTH_FIELDS.get(spec.cls)
    if layers is None or field is None:
        return {}
    extra = {field: layers}
    if spec.config.get("dual_attention_layers"):
        extra["dual_attention_layers"] = [i for i in spec.config["dual_attention_layers"] if i < layers]
    return extra


def _library_class(folder: Path) -> list[str]:
    """``[library, class]`` of a saved component, as model_index.json names it."""
    for name, library in (("scheduler_config.json", "diffusers"), ("config.json", None),
                          ("tokenizer_config.json", "transformers"), ("preprocessor_config.json", "transformers")):
        path = folder / name
        if not path.exists():
            continue
        data = json.loads(path.read_text())
        if name == "config.json":
            if "_class_name" in data:
                return ["diffusers", data["_class_name"]]
            cls = data["architectures"][0]  # diffusers' own transformers model lives in its pipeline module
            return ["stable_diffusion" if cls == "StableDiffusionSafetyChecker" else "transformers", cls]
        if name == "tokenizer_config.json":
            return [library, data["tokenizer_class"]]
        return [library, data.get("_class_name") or data.get("image_processor_type")]
    raise FileNotFoundError(f"{folder}: no component files")


def _shared(root: Path, name: str, dtype_name: str, make) -> Path:
    """``DIR/_shared/NAME``, made once (its own marker), shared by every pipeline that links it."""
    folder = root / "_shared" / f"{name}-{dtype_name}"
    if not (folder / MARKER).exists():
        tmp = folder.with_name(f".{folder.name}.tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        make(tmp)
        (tmp / MARKER).write_text(json.dumps({"shared": name, "dtype": dtype_name}))
        shutil.rmtree(folder, ignore_errors=True)
        tmp.rename(folder)
    return folder


def _component(root: Path, out: Path, spec: Weights | Part, dtype: torch.dtype, dtype_name: str, seed: int,
               layers: int | None) -> None:
    if isinstance(spec, Weights):
        extra = _depth(spec, layers)
        def make(folder):
            return write_weights(folder, spec, dtype, seed, **extra)
        shared = spec.shared if not extra else None
    else:
        def make(folder):
            return MAKERS[spec.maker](folder, **spec.args)
        shared = spec.shared
    if shared is None:
        make(out)
        return
    target = _shared(root, shared, dtype_name if isinstance(spec, Weights) else "files", make)
    out.parent.mkdir(parents=True, exist_ok=True)
    os.symlink(os.path.relpath(target, out.parent), out, target_is_directory=True)


def build_model(model: RealModel, root: Path, dtype_name: str = "bfloat16", seed: int = 0,
                layers: int | None = None, force: bool = False) -> Path:
    """``DIR/NAME`` for one catalogue model (``layers``: a cut copy whose denoiser keeps its first blocks)."""
    dtype = DTYPES[dtype_name]
    out = root / model.name
    marker = out / MARKER
    want = {"hub_id": model.hub_id, "dtype": dtype_name, "seed": seed, "layers": layers}
    if marker.exists() and not force and {k: v for k, v in json.loads(marker.read_text()).items()
                                          if k in want} == want:
        return out
    tmp = root / f".{model.name}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    torch.manual_seed(seed)
    if model.kind == "pipeline":
        index = {"_class_name": model.pipeline, "_diffusers_version": _diffusers_version()}
        for key, spec in model.components.items():
            _component(root, tmp / key, spec, dtype, dtype_name, seed, layers)
            index[key] = _library_class(tmp / key)
        if model.pipeline == "StableDiffusionInstructPix2PixPipeline":
            index["requires_safety_checker"] = True
        (tmp / "model_index.json").write_text(json.dumps(index, indent=2))
    else:
        for spec in model.components.values():
            if isinstance(spec, Weights):
                write_weights(tmp, spec, dtype, seed)
            else:
                MAKERS[spec.maker](tmp, **spec.args)
    (tmp / MARKER).write_text(json.dumps({**want, "name": model.name}))
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    return out


def _diffusers_version() -> str:
    import diffusers

    return diffusers.__version__


def remove_model(model: RealModel, root: Path, keep_shared: bool = False) -> None:
    """Delete a built model's folder (and, unless kept, the shared components only it still links)."""
    out = root / model.name
    links = [os.path.realpath(p) for p in out.iterdir() if p.is_symlink()] if out.is_dir() else []
    shutil.rmtree(out, ignore_errors=True)
    if keep_shared:
        return
    still = set()
    for other in root.iterdir() if root.is_dir() else []:
        if other.is_dir() and not other.name.startswith(("_", ".")):
            still |= {os.path.realpath(p) for p in other.iterdir() if p.is_symlink()}
    for target in links:
        if target not in still:
            shutil.rmtree(target, ignore_errors=True)


def folder_bytes(path: Path) -> int:
    """Bytes on disk under ``path``, following its links into ``_shared`` once each."""
    seen, total = set(), 0
    for base, _, files in os.walk(path, followlinks=True):
        for f in files:
            real = os.path.realpath(os.path.join(base, f))
            if real not in seen:
                seen.add(real)
                total += os.path.getsize(real)
    return total
