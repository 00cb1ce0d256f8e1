"""One training arm, as started by the DeepSpeed launcher:

    deepspeed --num_gpus 2 train/run.py --run-dir runs/demo --arm sft
    deepspeed --num_gpus 1 train/run.py --run-dir runs/demo --arm base --conductivity de

Reads the run directory's resolved config and budgeted data (written by `./launch.sh run`), trains, saves
`checkpoints/<arm>/model`, checks it, and writes `checkpoints/<arm>/train.json` (the cost ledger) last:
its presence marks a complete checkpoint. With --conductivity LANG, the arm's model is instead fine-tuned on
CLiKA's fictional facts of LANG into `checkpoints/cd-<lang>-<arm>/` (a probe: its cost is not the arm's).
"""
from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the launcher runs this file as a script

from core.checkpoints import read_record, seal  # noqa: E402
from core.config import load_config  # noqa: E402
from core.io import atomic_write_json, hash_weights, sha256_file, share_with_team  # noqa: E402
from core.ledger import Cost  # noqa: E402
from core.models import resolve  # noqa: E402
from core.provenance import stamp  # noqa: E402
from core.tracking import active_run  # noqa: E402
from train import checks, pretrain, sft  # noqa: E402
from train.launch import start_arm, start_weights, training_data  # noqa: E402
from train.trainer import rank  # noqa: E402

METHODS = {"sft": sft.train, "lora": sft.train, "cpt": pretrain.train, "mixed": pretrain.train}


def _checkpoint(run_dir: Path, name: str, needed_by: str) -> dict:
    path = run_dir / "checkpoints" / name / "train.json"
    if not path.is_file():
        raise SystemExit(f"{needed_by}: arm {name!r} has no complete checkpoint ({path}); train it first")
    return read_record(path)


def start_model(run_dir: Path, arm, base: str) -> tuple[str, dict | None]:
    """The weights an arm starts from: the base model, or (init_from) an earlier arm's complete checkpoint."""
    if arm.init_from is None:
        return base, None
    first = _checkpoint(run_dir, arm.init_from, arm.name)
    return first["model_dir"], first


def probe_start(run_dir: Path, arm, base: str) -> str:
    """The model a conductivity probe fine-tunes: a base arm's model, or a training arm's checkpoint."""
    if arm.method == "base":
        return resolve(arm.model) if arm.model else base
    return _checkpoint(run_dir, arm.name, "conductivity")["model_dir"]


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run-dir", required=True, type=Path, help="run directory prepared by ./launch.sh run")
    p.add_argument("--arm", required=True, help="name of a training arm in the run's config")
    p.add_argument("--conductivity", metavar="LANG", help="fine-tune the arm's model on CLiKA's fictional facts of LANG")
    p.add_argument("--local_rank", type=int, default=-1, help=argparse.SUPPRESS)  # passed by the deepspeed launcher
    args = p.parse_args(argv)

    cfg = load_config(args.run_dir / "config.yaml")
    arm = cfg.arm(args.arm)
    if args.conductivity:
        probe = cfg.tasks.conductivity.probe_arm(arm.name, args.conductivity)
        model_path, first_stage = probe_start(args.run_dir, arm, resolve(cfg.model.name)), None
        out = args.run_dir / "checkpoints" / probe.name
        stage_cost, tokens_by_lang = sft.train(cfg, probe, args.run_dir, model_path, out,
                                               data_file=f"fictional-{args.conductivity}.jsonl")
        probe_of, arm = arm.name, probe
    else:
        probe_of = None
        model_path, first_stage = start_model(args.run_dir, arm, resolve(cfg.model.name))
        out = args.run_dir / "checkpoints" / arm.name
        stage_cost, tokens_by_lang = METHODS[arm.method](cfg, arm, args.run_dir, model_path, out)
    cost = Cost.from_dict(first_stage["cost"]).then(stage_cost) if first_stage else stage_cost
    for lang, n in (first_stage or {}).get("tokens_by_lang", {}).items():
        tokens_by_lang[lang] = tokens_by_lang.get(lang, 0) + n

    if rank() != 0:
        return
    # The checks load models on rank 0 alone: ZeRO-3's partitioned loading must be off by then.
    from transformers.integrations.deepspeed import unset_hf_deepspeed_config

    unset_hf_deepspeed_config()
    model_dir = out / "model"
    check = (checks.check_adapter if arm.method == "lora" else checks.check_full)(model_dir, model_path)
    print(f"[{arm.name}] checkpoint check passed: {check}", flush=True)
    share_with_team(model_dir)
    atomic_write_json(out / "train.json", seal({
        **stamp(cfg.model.dtype), "seed": cfg.seed if arm.seed is None else arm.seed,
        "data_sha256": sha256_file(training_data(cfg, args.run_dir, probe_of or arm.name, args.conductivity)),
        "start_weights_sha256": start_weights(args.run_dir, start_arm(cfg, probe_of or arm.name, args.conductivity)),
        "arm": arm.name, "method": arm.method, "base_model": model_path, "model_dir": str(model_dir),
        "init_from": arm.init_from, "probe_of": probe_of, "weights_sha256": hash_weights(model_dir), "config_hash": cfg.hash(),
        "check": check, "cost": cost.as_dict(), "stage_cost": stage_cost.as_dict(), "tokens_by_lang": tokens_by_lang,
    }))
    # intermediate checkpoints (optimizer states: several times the model) are only needed to resume
    for checkpoint in (out / "trainer").glob("checkpoint-*"):
        shutil.rmtree(checkpoint, ignore_errors=True)
    if (run := active_run()) is not None:
        run.finish()


if __name__ == "__main__":
    main()
