"""Whether a stage's Ray workers fit anywhere: checked before a run starts where the answer is known."""

from __future__ import annotations

import os

from mora.config import RayConfig, RayStage


def local_cpus(r: RayConfig) -> int:
    """The CPUs a local instance offers: enough for every worker unless runtime.ray.num_cpus says otherwise."""
    wanted = sum(s.workers * max(s.cpus, 0) for s in (r.generators, r.judges))
    return r.num_cpus or max(os.cpu_count() or 1, int(wanted + 0.999))


def local_node(r: RayConfig) -> dict[str, float]:
    """What the one node of a local instance has (Ray finds the same GPUs torch does)."""
    import torch

    return {"CPU": float(local_cpus(r)), "GPU": float(torch.cuda.device_count())}


def _asks(stage: RayStage) -> dict[str, float]:
    return {k: v for k, v in {"CPU": stage.cpus, "GPU": stage.gpus, **stage.resources}.items() if v > 0}


def unplaceable(r: RayConfig, nodes: list[dict[str, float]]) -> str | None:
    """Why a stage's worker fits on no node of the cluster (``nodes``: each live node's resources), or None."""
    for label, stage in (("generators", r.generators), ("judges", r.judges)):
        asks = _asks(stage)
        if any(all(node.get(k, 0) >= v for k, v in asks.items()) for node in nodes):
            continue
        wanted = ", ".join(f"{k} {v:g}" for k, v in asks.items())
        offers = "; ".join(", ".join(f"{k} {node.get(k, 0):g}" for k in asks) for node in nodes) or "none"
        return (f"runtime.ray.{label} asks for {wanted} per worker, but no node of the Ray cluster has that "
                f"(nodes offer: {offers}); lower runtime.ray.{label}.cpus/gpus/resources or add such a node")
    return None
