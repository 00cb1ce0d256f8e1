"""Training stage: each training job (core/jobs.py) as its own process, started by the real DeepSpeed
launcher.

A job whose `checkpoints/<job>/train.json` exists is complete and is not trained again; one that was killed
resumes inside its training process from its last complete checkpoint (arms with `save_steps`).
Jobs train in config order, so an `init_from` arm's first stage is ready before it.
"""
from __future__ import annotations

import os
import shlex
import shutil
import socket
import sys
from pathlib import Path

import torch

from core import checkpoints
from core.config import ExperimentConfig
from core.errors import StageFailed
from core.io import sha256_file
from core.jobs import Job
from core.processes import run_tree
from core.provenance import PROTOCOL, is_current, protocol_of
from core.rundir import RunDir
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


def launch_line(cfg: ExperimentConfig, port: int, program: list[str]) -> list[str]:
    """`deepspeed` starting the config's ranks (run in the repository root; the hostfile's path made absolute,
    as prepare checked it) on `program`: a script and its arguments, or --module and a module's."""
    hostfile = ["--hostfile", str(cfg.deepspeed.hostfile_path())] if cfg.deepspeed.hostfile else []
    return [*launcher(), *hostfile, "--num_gpus", str(cfg.deepspeed.num_gpus), "--master_port", str(port),
            *program]


def command(cfg: ExperimentConfig, run_dir: Path, job: str, port: int) -> list[str]:
    """The `deepspeed` command line of one training job."""
    return launch_line(cfg, port, [str(REPO / "train" / "run.py"), "--run-dir", str(run_dir), "--job", job])


def environment(cfg: ExperimentConfig, run_dir: Path, name: str, job_type: str = "train") -> dict[str, str]:
    env = dict(os.environ) | wandb_env(cfg, run_dir, name, job_type)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    if not torch.cuda.is_available():
        # CPU ranks share the cores; oversubscribed threads make every rank slower.
        env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // cfg.deepspeed.num_gpus)))
    return env


def planned(cfg: ExperimentConfig, run_dir: Path, world: int) -> list[str]:
    """What `--dry-run` prints: per training job, the environment the launcher adds and the exact command line
    _launch would run. Reads the hostfile; runs, writes and loads nothing."""
    ds = cfg.deepspeed
    nodes = ds.hosts()
    listed = ", ".join(f"{h} slots={n}" for h, n in nodes.items())
    where = (f"{len(nodes)} hosts × {ds.num_gpus} ({listed} in {ds.hostfile_path()})" if nodes
             else f"one node, {ds.num_gpus} ranks")
    jobs = cfg.jobs()
    lines = [f"[dry-run] {cfg.name}: {len(jobs)} training job(s), {world} ranks: {where}; run directory "
             f"{run_dir}"]
    if len(nodes) > 1:
        lines.append("[dry-run] every host needs this repository, its .venv and the run directory at these "
                     "paths (a shared filesystem); of the environment, DeepSpeed passes PYTHON*, NCCL*, UCX* "
                     "and .deepspeed_env's variables to the other hosts")
    port = cfg.deepspeed.master_port
    if port is None and jobs:
        port = _free_port()
        lines.append(f"[dry-run] master port {port}: free on this host now; each launch picks a free one "
                     "(deepspeed.master_port fixes it)")
    run = RunDir(run_dir)
    for job in jobs:
        added = {k: v for k, v in environment(cfg, run_dir, job.name).items() if os.environ.get(k) != v}
        done = " (train.json present: not retrained if current)" if run.record(job.name).is_file() else ""
        lines.append(f"# {job.name}{done}; environment added: "
                     + " ".join(f"{k}={shlex.quote(v)}" for k, v in sorted(added.items())))
        lines.append(shlex.join(command(cfg, run_dir, job.name, port)))
    return lines


def start_weights(run: RunDir, start: str | None) -> str | None:
    """The weight hash of the checkpoint a job starts from, as its train.json records it, verified against the
    files: a job never starts from damaged weights."""
    if not (start and run.complete(start)):
        return None
    return checkpoints.verified_record(run.record(start)).weights_sha256


def _current(run: RunDir, job: str, data: Path | None = None, start: str | None = None) -> bool:
    """A complete checkpoint of this code's protocol, trained on the data now prepared, from the start
    checkpoint now on disk; one of another protocol, other data or another start is removed (with a message),
    so that it is trained again. Damaged weights are an error (UserError), never silently trained again."""
    record, out = run.record(job), run.checkpoint(job)
    if not record.is_file():
        checkpoints.verify_resumable(run.trainer(job))   # what a killed job resumes from
        return False
    written = checkpoints.read_record(record)
    why = None
    if not is_current(written):
        why = f"written under protocol {protocol_of(written)}, this code computes protocol {PROTOCOL}"
    elif data is not None and written.data_sha256 != sha256_file(data):
        why = f"trained on other data than {data} holds now"
    elif start is not None and written.start_weights_sha256 != start:
        why = "started from a checkpoint that has been trained again since"
    if why is None:
        checkpoints.verify(written, record)
        return True
    print(f"[train] {out.name}: checkpoint {why}: training it again", flush=True)
    # first: a crash while removing the rest leaves an incomplete checkpoint, never a stale one
    record.unlink()
    shutil.rmtree(out)
    return False


def _remove_shared_buffers(port: int) -> None:
    """DeepSpeed's CPU all-reduce leaves its shared-memory buffers (64 MiB a rank, in /dev/shm, i.e. RAM)
    behind when the job ends; a few hundred runs on one machine fill its memory until a training rank is
    killed."""
    for buffer in Path("/dev/shm").glob(f"deepspeed_allreduce_buffer_{os.getuid()}_*_{port}_*"):
        buffer.unlink(missing_ok=True)


def _launch(cfg: ExperimentConfig, run: RunDir, job: Job) -> None:
    if _current(run, job.name, run.data(job.data), start_weights(run, job.start)):
        print(f"[train] {job.name}: complete checkpoint found, not retrained", flush=True)
        return
    port = cfg.deepspeed.master_port or _free_port()
    cmd = command(cfg, run.root, job.name, port)
    print("[train] " + " ".join(cmd), flush=True)
    try:
        code = run_tree(cmd, environment(cfg, run.root, job.name), REPO)
    finally:
        _remove_shared_buffers(port)
    if code != 0:
        raise StageFailed(f"training {job.name!r} failed (exit {code}); see the log above")
    if not run.complete(job.name):
        raise StageFailed(f"training {job.name!r} exited without a checked checkpoint; see the log above")


def train_arms(cfg: ExperimentConfig, run_dir: Path, arm_names: list[str] | None = None) -> None:
    """Every training job of the config (those of `arm_names` alone: the arms' own and their probes)."""
    for job in cfg.jobs():
        if arm_names is None or job.name in arm_names or job.probe_of in arm_names:
            _launch(cfg, RunDir(run_dir), job)
