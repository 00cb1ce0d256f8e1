"""COMET scores of translations, computed in COMET's own environment (`./launch.sh comet-setup`).

Run by eval/comet.py with that environment's python, never imported by the framework: unbabel-comet pins
numpy<2 and transformers<5, which the framework's environment cannot share. By hand:

  .venv-comet/bin/python -I eval/comet_runner.py --model Unbabel/wmt22-comet-da --input items.jsonl \
      --output scores.json

MODEL: a hub id (downloaded into the Hugging Face cache) or a checkpoint file (`<model>/checkpoints/
model.ckpt`). Input: one {"src", "mt", "ref"} object per line. Output: {"system_score", "scores",
"checkpoint", "unbabel_comet", "torch", "gpus"}. A failure exits with code 1 and a last stderr line
`COMET-ERROR: <type>: <message>`, which eval/comet.py shows.
"""
import argparse
import json
import os
import sys

ERROR = "COMET-ERROR: "

# This file's own folder holds the framework's eval/comet.py: `import comet` must find unbabel-comet's.
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _HERE]


def _version(package: str, module) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return getattr(module, "__version__", None)


def score(model_name: str, rows: list[dict], batch_size: int) -> dict:
    import comet
    import torch

    checkpoint = model_name if os.path.isfile(model_name) else comet.download_model(model_name)
    model = comet.load_from_checkpoint(checkpoint)
    gpus = 1 if torch.cuda.is_available() else 0
    out = model.predict(rows, batch_size=batch_size, gpus=gpus, progress_bar=False)
    return {"system_score": float(out.system_score), "scores": [float(s) for s in out.scores],
            "checkpoint": str(checkpoint), "unbabel_comet": _version("unbabel-comet", comet),
            "torch": _version("torch", torch), "gpus": gpus}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True)
    p.add_argument("--input", required=True)
    p.add_argument("--output", required=True)
    p.add_argument("--batch-size", type=int, default=16)
    args = p.parse_args(argv)
    try:
        with open(args.input, encoding="utf-8") as f:
            rows = [json.loads(line) for line in f if line.strip()]
        result = score(args.model, rows, args.batch_size)
    except BaseException as e:   # one line for the caller; KeyboardInterrupt and SystemExit included
        message = " ".join(str(e).split())[:300]
        print(f"{ERROR}{type(e).__name__}" + (f": {message}" if message else ""), file=sys.stderr,
              flush=True)
        return 1
    with open(args.output, "w", encoding="utf-8") as f:
        json.dump(result, f)
    return 0


if __name__ == "__main__":
    sys.exit(main())
