"""yarn: is training worth it for my language, or do a few prior tokens do the job?

  ./launch.sh                               set up, then run configs/experiments/demo.yaml
  ./launch.sh run CONFIG [key=value ...]    run an experiment: prepare -> train (DeepSpeed) -> eval -> report
  ./launch.sh report RUN_DIR                rebuild the report from RUN_DIR/results.jsonl alone
  ./launch.sh analyze --run-dir RUN_DIR     base-vs-aligned token distribution shift (see analyze --help)
  ./launch.sh test                          set up, run the test suite

Runs are written to <output_dir>/<name>/ (default runs/<name>/): config.yaml, data/, checkpoints/,
results/, results.jsonl, report.md, report.csv, quality_vs_cost.png, wandb/. A run started again with
the same config continues where it stopped. Data directory (UD, CLiKA): data.dir=... or YARN_DATA_DIR.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from core.errors import UserError


def cmd_run(args) -> None:
    from core.config import load_config
    from core.prepare import prepare

    cfg = load_config(args.config, args.overrides)
    run_dir = prepare(cfg, Path(args.config))
    print(f"[run] {cfg.name} (config {cfg.hash()}) -> {run_dir}", flush=True)
    if args.stage in ("all", "train"):
        from train.launch import train_arms

        train_arms(cfg, run_dir)
    if args.stage in ("all", "eval"):
        from eval.run import Evaluator

        Evaluator(cfg, run_dir).run()
    if args.stage in ("all", "eval", "report"):
        _report(run_dir, cfg)


def _report(run_dir: Path, cfg=None) -> None:
    from eval.report import build_report

    paths = build_report(run_dir)
    print((run_dir / "report.md").read_text())
    for p in paths.values():
        print(f"[report] {p}")
    if cfg is not None and cfg.wandb.mode != "disabled":
        from core.tracking import init_run
        import wandb

        run = init_run(cfg, run_dir, "report", "report")
        art = wandb.Artifact(f"{cfg.name}-report", type="report")
        for p in paths.values():
            art.add_file(str(p))
        run.log_artifact(art)
        run.finish()


def cmd_report(args) -> None:
    run_dir = Path(args.run_dir)
    cfg = None
    if (run_dir / "config.yaml").is_file():
        from core.config import load_config

        cfg = load_config(run_dir / "config.yaml")
    _report(run_dir, cfg)


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["analyze"]:  # its own argument parser
        from align.analyze import main as analyze

        return analyze(argv[1:])
    p = argparse.ArgumentParser(prog="./launch.sh", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="verb", required=True)
    r = sub.add_parser("run", help="run an experiment config", description="Run an experiment: prepare the data, "
                       "train each training arm under DeepSpeed, evaluate every arm, write the report.")
    r.add_argument("config", help="experiment YAML, e.g. configs/experiments/demo.yaml")
    r.add_argument("overrides", nargs="*", help="key=value overrides of config fields, e.g. data.budget=64 arms.1.epochs=2")
    r.add_argument("--stage", choices=["all", "prepare", "train", "eval", "report"], default="all",
                   help="run only this stage, after prepare (each stage reads the files the earlier ones wrote)")
    r.set_defaults(func=cmd_run)
    rep = sub.add_parser("report", help="rebuild the report of a run directory from its results.jsonl")
    rep.add_argument("run_dir")
    rep.set_defaults(func=cmd_report)
    sub.add_parser("analyze", help="token distribution shift of an aligned checkpoint against its base model",
                   add_help=False)
    args = p.parse_args(argv)
    try:
        args.func(args)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
