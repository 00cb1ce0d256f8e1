"""Training stage: each training arm as its own process, started by the real DeepSpeed launcher.

An arm whose `checkpoints/<arm>/train.json` exists is complete and is not trained again; one that was killed
resumes inside its training process from its last complete checkpoint (arms with `save_steps`).
Arms train in config order, so an `init_from` arm's first stage is ready before it.
"""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import torch

from core import checkpoints
from core.config import ExperimentConfig
from core.errors import StageFailed
from core.io import sha256_file
from core.provenance import PROTOCOL, is_current, protocol_of
from core.tracking import wandb_env

REPO = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launcher() -> list[str]:
    """The `deepspeed` command beside this Python; where pip installed the package without its scripts (e.g.
    with --target), the same runner as a module."""
    script = Path(sys.executable).with_name("deepspeed")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "deepspeed.launcher.runner"]


def command(cfg: ExperimentConfig, run_dir: Path, arm_name: str, conductivity: str | None = None) -> list[str]:
    port = cfg.deepspeed.master_port or _free_port()
    hosts = ["--hostfile", cfg.deepspeed.hostfile] if cfg.deepspeed.hostfile else []
    return [*launcher(), *hosts, "--num_gpus", str(cfg.deepspeed.num_gpus), "--master_port", str(port),
            str(REPO / "train" / "run.py"), "--run-dir", str(run_dir), "--arm", arm_name,
            *(["--conductivity", conductivity] if conductivity else [])]


def environment(cfg: ExperimentConfig, run_dir: Path, arm_name: str) -> dict[str, str]:
    env = dict(os.environ) | wandb_env(cfg, run_dir, arm_name, "train")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    if not torch.cuda.is_available():
        # CPU ranks share the cores; oversubscribed threads make every rank slower.
        env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // cfg.deepspeed.num_gpus)))
    return env


def training_data(cfg: ExperimentConfig, run_dir: Path, arm_name: str, conductivity: str | None = None) -> Path:
    """The prepared file an arm trains on: a probe's fictional facts, a pretraining arm's token sequence (one per
    configured arm, shared by its seeds) or the budget's labelled rows."""
    if conductivity:
        return run_dir / "data" / f"fictional-{conductivity}.jsonl"
    if cfg.arm(arm_name).method in ("cpt", "mixed"):
        return run_dir / "data" / f"pretrain-{cfg.family(arm_name)}.jsonl"
    return run_dir / "data" / "train.jsonl"


def start_arm(cfg: ExperimentConfig, arm_name: str, conductivity: str | None = None) -> str | None:
    """The arm of this run whose checkpoint a training job starts from: init_from, or the trained arm a
    conductivity probe fine-tunes; None when it starts from a model outside the run's training."""
    arm = cfg.arm(arm_name)
    if conductivity:
        return arm.name if arm.method != "base" else None
    return getattr(arm, "init_from", None)


def start_weights(run_dir: Path, start: str | None) -> str | None:
    """The weight hash of the checkpoint a job starts from, as its train.json records it, verified against the
    files: a job never starts from damaged weights."""
    record = run_dir / "checkpoints" / start / "train.json" if start else None
    if not (record and record.is_file()):
        return None
    return checkpoints.verified_record(record).get("weights_sha256")


def _current(out: Path, data: Path | None = None, start: str | None = None) -> bool:
    """A complete checkpoint of this code's protocol, trained on the data now prepared, from the start
    checkpoint now on disk; one of another protocol, other data or another start is removed (with a message),
    so that it is trained again. Damaged weights are an error (UserError), never silently trained again."""
    record = out / "train.json"
    if not record.is_file():
        checkpoints.verify_resumable(out / "trainer")   # what a killed job resumes from
        return False
    written = checkpoints.read_record(record)
    why = None
    if not is_current(written):
        why = f"written under protocol {protocol_of(written)}, this code computes protocol {PROTOCOL}"
    elif data is not None and written.get("data_sha256") != sha256_file(data):
        why = f"trained on other data than {data} holds now"
    elif start is not None and written.get("start_weights_sha256") != start:
        why = "started from a checkpoint that has been trained again since"
    if why is None:
        checkpoints.verify(written, record)
        return True
    print(f"[train] {out.name}: checkpoint {why}: training it again", flush=True)
    record.unlink()   # first: a crash while removing the rest leaves an incomplete checkpoint, never a stale one
    shutil.rmtree(out)
    return False


def _launch(cfg: ExperimentConfig, run_dir: Path, arm_name: str, out_name: str, conductivity: str | None = None) -> None:
    if _current(run_dir / "checkpoints" / out_name, training_data(cfg, run_dir, arm_name, conductivity),
                start_weights(run_dir, start_arm(cfg, arm_name, conductivity))):
        print(f"[train] {out_name}: complete checkpoint found, not retrained", flush=True)
        return
    cmd = command(cfg, run_dir, arm_name, conductivity)
    print("[train] " + " ".join(cmd), flush=True)
    proc = subprocess.run(cmd, env=environment(cfg, run_dir, out_name), cwd=REPO)
    if proc.returncode != 0:
        raise StageFailed(f"training {out_name!r} failed (exit {proc.returncode}); see the log above")
    if not (run_dir / "checkpoints" / out_name / "train.json").is_file():
        raise StageFailed(f"training {out_name!r} exited without a checked checkpoint; see the log above")


def train_arms(cfg: ExperimentConfig, run_dir: Path, arm_names: list[str] | None = None) -> None:
    """Every training arm, then (with a conductivity task) each probe: an arm's model fine-tuned on fictional facts."""
    for arm in cfg.trained_arms():
        if arm_names is None or arm.name in arm_names:
            _launch(cfg, run_dir, arm.name, arm.name)
    task = cfg.tasks.conductivity
    for arm_name in task.from_arms if task else []:
        for lang in task.langs:
            if arm_names is None or arm_name in arm_names:
                _launch(cfg, run_dir, arm_name, task.probe_name(arm_name, lang), lang)
