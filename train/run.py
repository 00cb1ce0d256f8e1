"""One training job (an arm, a two-stage arm's second stage, a task's probe), as started by the DeepSpeed
launcher:

    PYTHONPATH=. deepspeed --num_gpus 2 train/run.py --run-dir runs/demo --job sft

(the launcher, train/launch.py, sets PYTHONPATH to the repository itself).

Reads the run directory's resolved config and prepared data (written by `./launch.sh run`), trains, saves
`checkpoints/<job>/model`, checks it, and writes `checkpoints/<job>/train.json` (the cost ledger) last: its
presence marks a complete checkpoint. The jobs of a config: `ExperimentConfig.jobs()` (core/jobs.py).
"""
from __future__ import annotations

import argparse
import importlib
import shutil
import sys
from pathlib import Path

from transformers.integrations.deepspeed import unset_hf_deepspeed_config

from core.arms import ARMS
from core.checkpoints import seal
from core.config import load_config
from core.errors import UserError
from core.io import atomic_write_json, hash_weights, sha256_file, share_with_team
from core.ledger import Cost
from core.models import resolve
from core.provenance import stamp
from core.records import SCHEMA_VERSION, TrainRecord
from core.rundir import RunDir
from core.tracking import active_run
from train import checks
from train import trainer as common
from train.launch import start_weights
from train.trainer import rank


def start_model(run: RunDir, job, base: str) -> tuple[str, TrainRecord | None]:
    """The weights a job starts from and, when it carries their cost (a two-stage arm), their train.json: an
    earlier job's checkpoint, an outside model (a base arm's `model:`), else the base model."""
    if job.start is not None:
        first = run.trained(job.start, job.name, verify=False)   # the launcher verified it
        return first.model_dir, first if job.adds_start_cost else None
    return (resolve(job.start_model) if job.start_model else base), None


def trainer(method: str):
    """The training function an arm kind names ("module:function"), imported here alone: only the training
    process needs TRL and PEFT."""
    module, _, function = ARMS[method].trainer.partition(":")
    return getattr(importlib.import_module(module), function)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run-dir", required=True, type=Path, help="run directory prepared by ./launch.sh run")
    p.add_argument("--job", required=True, help="name of a training job of the run's config (an arm's name, "
                   "or a probe's, e.g. cd-de-base)")
    # passed by the deepspeed launcher
    p.add_argument("--local_rank", type=int, default=-1, help=argparse.SUPPRESS)
    args = p.parse_args(argv)

    run = RunDir(args.run_dir)
    try:
        cfg = load_config(run.config)
        job = cfg.job(args.job)
    except UserError as e:   # by hand: a wrong job name or run directory is one line, not a traceback
        print(f"error: {e}", file=sys.stderr)
        sys.exit(e.exit_code)
    arm = job.arm
    model_path, first_stage = start_model(run, job, resolve(cfg.model.name))
    out = run.checkpoint(job.name)
    stage_cost, tokens_by_lang = trainer(arm.method)(cfg, arm, model_path, out, run.data(job.data))
    cost = Cost.from_dict(first_stage.cost).then(stage_cost) if first_stage else stage_cost
    for lang, n in (first_stage.tokens_by_lang if first_stage else {}).items():
        tokens_by_lang[lang] = tokens_by_lang.get(lang, 0) + n

    if rank() != 0:
        return
    # The checks load models on rank 0 alone: ZeRO-3's partitioned loading must be off by then.
    unset_hf_deepspeed_config()
    model_dir = out / "model"
    check = (checks.check_adapter if arm.method == "lora" else checks.check_full)(model_dir, model_path)
    print(f"[{arm.name}] checkpoint check passed: {check}", flush=True)
    share_with_team(model_dir)
    atomic_write_json(run.record(job.name), seal(TrainRecord(
        **stamp(cfg.model.dtype, attention=common.used_attention), schema_version=SCHEMA_VERSION,
        seed=cfg.seed if arm.seed is None else arm.seed,
        data_sha256=sha256_file(run.data(job.data)), start_weights_sha256=start_weights(run, job.start),
        arm=job.name, method=arm.method, base_model=model_path, model_dir=str(model_dir),
        init_from=arm.init_from,
        probe_of=job.probe_of, weights_sha256=hash_weights(model_dir), config_hash=cfg.hash(), check=check,
        cost=cost.as_dict(), stage_cost=stage_cost.as_dict(), tokens_by_lang=tokens_by_lang)))
    # intermediate checkpoints (optimizer states: several times the model) are only needed to resume
    for checkpoint in run.trainer(job.name).glob("checkpoint-*"):
        shutil.rmtree(checkpoint, ignore_errors=True)
    if (run := active_run()) is not None:
        run.finish()


if __name__ == "__main__":
    main()
