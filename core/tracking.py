"""Weights & Biases runs: settings come from the config, offline when no API key is set, never a prompt."""
from __future__ import annotations

import netrc
import os
import re
from pathlib import Path

from core.config import ExperimentConfig
from core.provenance import PROTOCOL


def _has_api_key() -> bool:
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        return netrc.netrc().authenticators("api.wandb.ai") is not None
    except (OSError, netrc.NetrcParseError):
        return False


def wandb_mode(cfg: ExperimentConfig) -> str:
    if cfg.wandb.mode == "auto":
        return "online" if _has_api_key() else "offline"
    return cfg.wandb.mode


def wandb_env(cfg: ExperimentConfig, run_dir: Path, name: str, job_type: str) -> dict[str, str]:
    """Environment for a W&B run made by a child process (the HF Trainer's W&B callback reads these).
    The run id is fixed by experiment, config hash, arm and job, so a restarted job resumes into the same
    run."""
    env = {
        "WANDB_PROJECT": cfg.wandb.project,
        "WANDB_RUN_GROUP": cfg.wandb.group or cfg.name,
        "WANDB_NAME": name,
        "WANDB_JOB_TYPE": job_type,
        "WANDB_MODE": wandb_mode(cfg),
        "WANDB_DIR": str(run_dir),
        "WANDB_RUN_ID": run_id(cfg, name, job_type),
        "WANDB_RESUME": "allow",
        "WANDB_SILENT": "true",
        "WANDB_DISABLE_GIT": "true",
    }
    if cfg.wandb.entity:
        env["WANDB_ENTITY"] = cfg.wandb.entity
    return env


def run_id(cfg: ExperimentConfig, name: str, job_type: str) -> str:
    """Results of another protocol are recomputed: into a run of their own, not appended to the old one's."""
    return f"{cfg.name}-{name}-{job_type}-{cfg.hash()[:8]}-p{PROTOCOL}".replace(".", "_")


def active_run():
    """This process's W&B run, or None: also where wandb is not installed (a GPU box without it runs with
    wandb.mode: disabled)."""
    try:
        import wandb
    except ImportError:
        return None
    return wandb.run


def init_run(cfg: ExperimentConfig, run_dir: Path, name: str, job_type: str, config: dict | None = None):
    """A W&B run in this process (evaluation, report)."""
    os.environ.update(wandb_env(cfg, run_dir, name, job_type))
    import wandb

    return wandb.init(project=cfg.wandb.project, entity=cfg.wandb.entity, group=cfg.wandb.group or cfg.name,
                      name=name, job_type=job_type, mode=wandb_mode(cfg), dir=str(run_dir),
                      id=run_id(cfg, name, job_type),
                      resume="allow", config=config or cfg.model_dump(mode="json"),
                      settings=wandb.Settings(silent=True, console="off"))


def table_key(run_id: str, name: str, index: int) -> str:
    """A W&B history key for a table. W&B stores each logged table as an artifact named run-<run id>-<key>
    (only [A-Za-z0-9_.-] kept, plus a 7-character suffix), at most 128 characters: a long table title is cut
    and numbered."""
    key = f"report/{name}"

    def artifact_length(k: str) -> int:
        return len(re.sub(r"[^a-zA-Z0-9_\-.]+", "", f"run-{run_id}-{k}")) + 7

    while artifact_length(key) > 128:
        name = name[:-1]
        key = f"report/{index:02d} {name}…"
    return key
