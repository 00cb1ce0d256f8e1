"""Our SFT arm against a plain TRL script: same model, data, batch size and steps, one command.

    ./launch.sh bench sft_vs_trl [--model gemma-3-270m] [--examples 64] [--batch-size 8]

Ours: the `sft` arm of a prepared run, started by the real `deepspeed` launcher (ZeRO-2, as the experiments),
its tokens/s from the ledger. Baseline: `SFTTrainer` with TRL's defaults for prompt/completion data, no
DeepSpeed, in float32 as ours (TRL's own default is bf16 autocast), in a process of its own. Both count
non-padding tokens over the time of `trainer.train()` (model loading and process start are not timed).
Target (issue 4): ours / plain >= 0.95.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def plain_trl(run_dir: Path, model_path: str, batch_size: int, out: Path) -> None:
    """What a user would write with TRL alone (run in its own process by main)."""
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    rows = [json.loads(line) for line in open(run_dir / "data" / "train.jsonl", encoding="utf-8")]
    data = Dataset.from_list([{"prompt": r["prompt"], "completion": r["completion"]} for r in rows])
    # float32 as ours (the demo's model.dtype): TRL's default is bf16 autocast even on a CPU, where this
    # machine's bf16 GEMMs run on a slow fallback (~8x slower a step: measured, not a fair baseline)
    args = SFTConfig(output_dir=str(out / "plain"), per_device_train_batch_size=batch_size, bf16=False,
                     num_train_epochs=1, learning_rate=5e-5, logging_steps=5, save_strategy="no",
                     report_to=[], seed=0, use_cpu=True, include_num_input_tokens_seen="non_padding",
                     max_length=256)
    trainer = SFTTrainer(model=AutoModelForCausalLM.from_pretrained(model_path, dtype="float32"), args=args,
                         train_dataset=data, processing_class=AutoTokenizer.from_pretrained(model_path))
    start = time.time()
    trainer.train()
    wall = time.time() - start
    (out / "plain.json").write_text(json.dumps({"tokens": trainer.state.num_input_tokens_seen, "wall_s": wall,
                                                "steps": trainer.state.global_step}))


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="gemma-3-270m")
    p.add_argument("--examples", type=int, default=64,
                   help="labelled en-de examples (steps = examples / batch)")
    p.add_argument("--batch-size", type=int, default=8)
    # the baseline's process
    p.add_argument("--plain", nargs=2, metavar=("RUN_DIR", "OUT"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)

    from core.models import resolve

    model_path = resolve(args.model)
    if args.plain:
        return plain_trl(Path(args.plain[0]), model_path, args.batch_size, Path(args.plain[1]))

    from core.config import load_config
    from core.prepare import prepare
    from train.launch import train_arms

    with tempfile.TemporaryDirectory(prefix="bench-sft-") as tmp:
        cfg = load_config(REPO / "configs" / "experiments" / "demo.yaml", [
            f"model.name={args.model}", f"data.budget={args.examples}", "data.test_size=1",
            f"output_dir={tmp}", "name=bench", "wandb.mode=disabled", "tasks.mt.test=[{source: bible}]",
            f"arms=[{{method: sft, epochs: 1, learning_rate: 5.0e-5, batch_size: {args.batch_size}}}]"])
        run_dir = prepare(cfg, REPO / "configs" / "experiments" / "demo.yaml")
        train_arms(cfg, run_dir)
        ours = json.loads((run_dir / "checkpoints" / "sft" / "train.json").read_text())["cost"]
        env = dict(os.environ, PYTHONPATH=str(REPO))
        subprocess.run([sys.executable, __file__, "--model", args.model, "--batch-size", str(args.batch_size),
                        "--plain", str(run_dir), tmp], check=True, env=env)
        plain = json.loads((Path(tmp) / "plain.json").read_text())

    ours_tps, plain_tps = ours["train_tokens"] / ours["train_wall_s"], plain["tokens"] / plain["wall_s"]
    print(f"\nmodel {args.model}, {args.examples} examples, batch {args.batch_size}, "
          f"CPU threads {os.cpu_count()}")
    print(f"ours (deepspeed launcher, ZeRO-2): {ours['train_tokens']:>8,} tokens in "
          f"{ours['train_wall_s']:7.1f} s = {ours_tps:8.1f} tokens/s")
    print(f"plain TRL SFTTrainer:              {plain['tokens']:>8,} tokens in {plain['wall_s']:7.1f} s = "
          f"{plain_tps:8.1f} tokens/s")
    print(f"ratio ours / plain: {ours_tps / plain_tps:.3f} (target >= 0.95)")


if __name__ == "__main__":
    main()
