"""Gather what bench/gpu.py needs on a GPU box that can download nothing, into .gpu/ (git-ignored, < 64 MiB):

    .gpu/whl/        wheels of the packages its image lacks (its torch, CUDA, accelerate stay): DeepSpeed (a
                     source distribution: its wheel is built here, ops are compiled there when first used),
                     TRL, datasets, pydantic, and our versions of transformers and PEFT
    .gpu/train.jsonl, test.jsonl, de.txt, tokenizer/    the benchmark's data (bench.gpu.export_data)

    python bench/gpu_carry.py [--dest .gpu]

There, before the benchmark:
    python3 -m pip install -q --no-index --no-deps --target /tmp/site .gpu/whl/*.whl &&
    export PYTHONPATH=/tmp/site
"""
from __future__ import annotations

import argparse
import importlib.metadata as metadata
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

# The GPU image (KINDS.md of the device tool) has torch 2.11, transformers 5.17, accelerate, numpy, pandas,
# pyarrow, xxhash, fsspec, huggingface_hub, tokenizers, safetensors, sacrebleu, matplotlib, yaml, ninja,
# psutil, py-cpuinfo, msgpack, einops. Versions are ours, read from this environment.
# compiled; all fetched for the GPU box's Python and platform (multiprocess: per Python)
BINARY = ["pydantic_core"]
PURE = ["pydantic", "annotated_types", "typing_inspection", "typing_extensions", "trl", "datasets", "dill",
        "multiprocess", "fsspec", "hjson", "conllu", "transformers", "peft"]
SOURCE = ["deepspeed"]       # published as a source distribution only
PLATFORM = ["--python-version", "3.12", "--implementation", "cp", "--only-binary=:all:",
            *[a for tag in ("manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64")
              for a in ("--platform", tag)]]


def pins(names: list[str]) -> list[str]:
    return [f"{n}=={metadata.version(n)}" for n in names]


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dest", type=Path, default=REPO / ".gpu")
    args = p.parse_args(argv)
    whl = args.dest / "whl"
    whl.mkdir(parents=True, exist_ok=True)
    pip = [sys.executable, "-m", "pip", "-q"]
    for old in whl.glob("*.whl"):   # one version of each: two stop the install there
        old.unlink()
    subprocess.run([*pip, "download", "--no-deps", "-d", whl, *PLATFORM, *pins(BINARY + PURE)], check=True)
    # DeepSpeed's setup.py imports torch: build against this environment's, with no op compiled ahead
    subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", whl, *pins(SOURCE)], check=True,
                   env={**os.environ, "DS_BUILD_OPS": "0"})

    from bench.gpu import SIZES, export_data

    size = SIZES["gpu"]
    export_data(args.dest, size["budget"], size["test"], 4 * size["budget"])
    total = sum(f.stat().st_size for f in args.dest.rglob("*") if f.is_file())
    print(f"{args.dest}: {total / 2**20:.1f} MiB ({len(list(whl.glob('*.whl')))} wheels)")
    if total > 60 * 2**20:
        raise SystemExit(f"{args.dest} is over 60 MiB: the device tool carries at most 64 MiB with the tree")


if __name__ == "__main__":
    main()
