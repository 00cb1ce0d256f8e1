"""yarn: is training worth it for my language, or do a few prior tokens do the job?

  ./launch.sh                               set up, then run configs/experiments/demo.yaml
  ./launch.sh run CONFIG [key=value ...]    run an experiment: prepare -> train (DeepSpeed) -> eval -> report
  ./launch.sh run CONFIG --dry-run          print every training job's exact deepspeed command, run nothing
  ./launch.sh sweep SWEEP.yaml [--dry-run]  a grid of experiments, one W&B group, finished ones skipped
  ./launch.sh report RUN_DIR                rebuild the report from RUN_DIR/results.jsonl alone (or a sweep's)
  ./launch.sh analyze --run-dir RUN_DIR     base-vs-aligned token distribution shift (see analyze --help)
  ./launch.sh test                          set up, run the test suite

Runs are written to <output_dir>/<name>/ (default runs/<name>/): config.yaml, data/, checkpoints/,
results/, results.jsonl, report.md, report.csv, quality_vs_cost.png, wandb/. A run started again with
the same config continues where it stopped. Data directory (UD, CLiKA): data.dir=... or YARN_DATA_DIR.
"""
from __future__ import annotations

import argparse
import errno
import shlex
import sys
from pathlib import Path

from core.args import positive
from core.errors import StageFailed, UserError
from core.processes import stop_on_sigterm


def cmd_run(args) -> None:
    from core.config import load_config

    cfg = load_config(args.config, args.overrides)   # validated first, also for --dry-run
    if args.dry_run:
        print_plan(cfg)
        return
    run_experiment(cfg, Path(args.config), args.stage, args.split)


def print_plan(cfg, point: str = "") -> None:
    """--dry-run: the exact `deepspeed` command line of every training job (train/launch.py `command()`),
    after checking what the launch reads (the DeepSpeed config, the hostfile); nothing is run, written or
    loaded. Whether this machine has the GPU packages a config asks for (flash-attn, liger-kernel) is checked
    where it runs."""
    from core.prepare import check_launch
    from core.rundir import RunDir
    from train.launch import planned

    try:
        world = check_launch(cfg) if cfg.jobs() else cfg.deepspeed.world_size()   # evaluation's ranks
    except UserError as e:
        raise UserError(f"{point}{e}") from None
    run_dir = RunDir.of(cfg).root
    lines = planned(cfg, run_dir, world)
    if world > 1 and not cfg.eval.in_process:   # the eval stage starts the same launcher on these ranks
        from eval.ranks import command as eval_command

        status = run_dir / ".eval-ranks-XXXX"   # a temporary folder the stage makes
        lines.append(f"# evaluation on {world} ranks, when a record is still to compute: "
                     + shlex.join(eval_command(cfg, run_dir, "test", status, cfg.deepspeed.master_port or
                                               "PORT")))
    elif world > 1:
        lines.append("# evaluation in this process (eval.in_process), on one device")
    print("\n".join(lines), flush=True)


def run_experiment(cfg, config_path: Path, stage: str = "all", split: str = "test") -> Path:
    """`split`: evaluate and report on test (the run directory) or on dev (its dev/ folder: every choice made
    before the test, e.g. a task format or a threshold, is made there)."""
    from core.prepare import prepare
    from core.rundir import RunDir

    run_dir = prepare(cfg, config_path)   # takes the run directory's lock once every input is checked
    try:
        print(f"[run] {cfg.name} (config {cfg.hash()}) -> {run_dir}", flush=True)
        if stage in ("all", "train"):
            from train.launch import train_arms

            train_arms(cfg, run_dir)
        if stage in ("all", "eval"):
            from eval.ranks import evaluate   # over the ranks training uses (one: in this process)

            evaluate(cfg, run_dir, split)
        if stage in ("all", "eval", "report"):
            if split == "test":
                _report(run_dir, cfg)
            else:
                _report(run_dir / split, cfg, name=f"report-{split}")
    finally:
        RunDir(run_dir).unlock()
    return run_dir


def cmd_sweep(args) -> None:
    from core.io import atomic_write_text
    from core.sweep import expand, is_finished, load_sweep, slurm_script

    spec = load_sweep(args.sweep)
    configs = expand(spec, args.output_dir)  # every point is validated before the first one runs
    if args.slurm:
        atomic_write_text(args.slurm, slurm_script(spec, configs, args.sweep, args.gpus_per_node, args.nodes))
        print(f"[sweep] {len(configs)} experiments -> {args.slurm} (sbatch {args.slurm})")
        return
    for cfg, overrides in configs:
        state = "finished" if is_finished(cfg, args.split) else "to run"
        print(f"[sweep] {cfg.name} ({cfg.hash()}, {state}): {' '.join(overrides[len(spec.overrides):])}")
    if args.dry_run:
        for cfg, overrides in configs:   # each point's training commands, as its run would start them
            print_plan(cfg, point=f"sweep {spec.name}: point {cfg.name}: ")
        return
    base = Path(spec.base) if Path(spec.base).is_absolute() else Path(__file__).resolve().parent / spec.base
    for cfg, _ in configs:
        if is_finished(cfg, args.split):
            continue
        run_experiment(cfg, base, split=args.split)
    if args.split == "test":   # each point's dev report is in its dev/ folder; the test report reads them
        _report(Path(args.output_dir) / spec.name)


def _report(run_dir: Path, cfg=None, usd_per_device_hour: float | None = None, name: str = "report") -> None:
    from eval.report import build_report

    price = usd_per_device_hour or (cfg.report.usd_per_device_hour if cfg is not None else None)
    paths, tables = build_report(run_dir, usd_per_device_hour=price)
    print(paths["md"].read_text())
    for p in paths.values():
        print(f"[report] {p}")
    if cfg is not None and cfg.wandb.mode != "disabled":
        from core.tracking import init_run, table_key
        import wandb

        run = init_run(cfg, run_dir, name, "report")
        run.log({table_key(run.id, name, i): table.wandb() for i, (name, table) in enumerate(tables.items())})
        art = wandb.Artifact(f"{cfg.name}-report", type="report")
        for p in paths.values():
            art.add_file(str(p))
        run.log_artifact(art)
        run.finish()


def cmd_report(args) -> None:
    from core.config import load_config
    from core.errors import PluginMissing
    from core.rundir import RunDir

    run = RunDir(args.run_dir)
    cfg = None
    if run.config.is_file():   # its plugins register their tasks for the report
        try:
            cfg = load_config(run.config)
        except PluginMissing as e:   # the records say what each task is judged by
            print(f"[report] {e}: reporting from the records alone", file=sys.stderr, flush=True)
        run.lock()   # not over the report of a run still writing its results
    try:
        _report(run.root, cfg, args.usd_per_device_hour)
    finally:
        run.unlock()


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["analyze"]:  # its own argument parser
        from align.analyze import main as analyze

        return analyze(argv[1:])
    p = argparse.ArgumentParser(prog="./launch.sh", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="verb", required=True)
    r = sub.add_parser("run", help="run an experiment config",
                       description="Run an experiment: prepare the data, "
                       "train each training arm under DeepSpeed, evaluate every arm, write the report.")
    r.add_argument("config", help="experiment YAML, e.g. configs/experiments/demo.yaml")
    r.add_argument("overrides", nargs="*",
                   help="key=value overrides of config fields, e.g. data.budget=64 arms.1.epochs=2")
    r.add_argument("--stage", choices=["all", "prepare", "train", "eval", "report"], default="all",
                   help="run only this stage, after prepare "
                   "(each stage reads the files the earlier ones wrote)")
    r.add_argument("--split", choices=["test", "dev"], default="test",
                   help="evaluate and report on the test split (default) or on the dev split, "
                   "into RUN_DIR/dev/: make every choice (a format, a threshold, the best arm) on dev, "
                   "then touch test once")
    r.add_argument("--dry-run", action="store_true",
                   help="validate the config, then print the exact deepspeed command line of every training "
                   "job (hostfile, ranks, master port, run directory) without running or writing anything")
    r.set_defaults(func=cmd_run)
    sw = sub.add_parser("sweep", help="run a grid of experiments (configs/sweeps/*.yaml)",
                        description="Expand a sweep file into experiments and run them one after another; "
                        "finished ones (same config hash, report written) are skipped, "
                        "a crashed one resumes.")
    sw.add_argument("sweep", help="sweep YAML, e.g. configs/sweeps/budget.yaml")
    sw.add_argument("--split", choices=["test", "dev"], default="test",
                    help="evaluate every point on the test split (default) or on dev (into each point's dev/ "
                    "folder: the choices the test report shows, e.g. which use of the budget wins)")
    sw.add_argument("--dry-run", action="store_true",
                    help="list the experiments, whether each is finished, and each one's deepspeed command "
                    "lines (as run --dry-run)")
    sw.add_argument("--output-dir", default="runs",
                    help="experiments go to OUTPUT_DIR/<sweep name>/<experiment>")
    sw.add_argument("--slurm", metavar="FILE",
                    help="write a Slurm job-array script running the sweep with DeepSpeed "
                    "across nodes (--hostfile from the allocation) instead of running it here")
    sw.add_argument("--gpus-per-node", type=positive(int), default=8, help="with --slurm")
    sw.add_argument("--nodes", type=positive(int), default=1, help="with --slurm: nodes per experiment")
    sw.set_defaults(func=cmd_sweep)
    rep = sub.add_parser("report", help="rebuild the report of a run directory from its results.jsonl")
    rep.add_argument("run_dir", help="a run directory, or a sweep's (every run one level down)")
    rep.add_argument("--usd-per-device-hour", type=positive(float), metavar="USD",
                     help="price of a device-hour: adds training cost in money "
                     "(default: report.usd_per_device_hour)")
    rep.set_defaults(func=cmd_report)
    sub.add_parser("analyze", help="token distribution shift of an aligned checkpoint against its base model",
                   add_help=False)
    # argparse ends a positional list at the first option: overrides after --stage/--split come back unparsed
    args, extra = p.parse_known_args(argv)
    if extra and hasattr(args, "overrides") and not any(e.startswith("-") for e in extra):
        args.overrides += extra
    elif extra:
        p.error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        with stop_on_sigterm():   # a SIGTERM stops the launcher's ranks too, and releases the run's lock
            args.func(args)
    except (UserError, StageFailed) as e:
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:   # the launcher and its ranks are stopped by then (core/processes.py)
        print("[run] interrupted: stopped with the launcher and its ranks; the same command resumes",
              file=sys.stderr)
        return 130
    except OSError as e:
        if e.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        # every file is written whole or not at all: what finished is kept, the rest is redone next time
        print(f"error: {e.strerror} writing {e.filename}: free some space and run the same command again",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
