"""A local OpenAI-compatible judge server: ``transformers serve`` with processors that work here.

vLLM is the production server and has no CPU build; ``transformers serve`` speaks the same API. On
machines without torchvision its processor loader fails on the video part of multimodal processors,
so this launcher gives it the project's loader (native where torchvision imports, image-only
otherwise) and then runs the stock server. Binds to 127.0.0.1 unless told otherwise.

    python -m mora.judges.serve MODEL_DIR --port 8011
"""

from __future__ import annotations

import argparse


def serve(model: str, host: str = "127.0.0.1", port: int = 8011, device: str = "cpu", seed: int = 0) -> None:
    from transformers.cli import serve as stock
    from transformers.cli.serving import model_manager

    from mora.judges.processors import load_processor

    class ModelManager(model_manager.ModelManager):
        def _load_processor(self, model_id_and_revision: str, gguf_file: str | None = None):
            if gguf_file is not None:
                return super()._load_processor(model_id_and_revision, gguf_file)
            model_id, revision = model_id_and_revision.split("@", 1)
            return load_processor(model_id, None if revision == "main" else revision)

    model_manager.ModelManager = ModelManager  # Serve imports it from this module when it starts
    stock.Serve(force_model=model, host=host, port=port, device=device, default_seed=seed)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m mora.judges.serve", description=__doc__.splitlines()[0])
    parser.add_argument("model", help="a local model folder or hub id")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8011)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    serve(args.model, args.host, args.port, args.device, args.seed)


if __name__ == "__main__":
    main()
