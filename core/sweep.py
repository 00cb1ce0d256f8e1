"""Sweeps: a grid (and paired lists) over any config fields, expanded into experiments that run one after
another, share one W&B group, and skip what is already finished.

    base: configs/experiments/demo.yaml      # the experiment every point starts from
    name: budget-sweep                       # W&B group; experiments go to runs/<name>/<experiment>
    overrides: [data.test_size=50]           # applied to every point
    grid:                                    # every combination of these ...
      data.budget: [64, 256, 1024]
    paired:                                  # ... with each position of these lists (same length), zipped
      arms.1.learning_rate: [5.0e-5, 1.0e-4]
      arms.1.epochs: [1, 2]
"""
from __future__ import annotations

import itertools
import re
import shlex
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from core.config import ExperimentConfig, load_config
from core.errors import UserError
from core.io import read_jsonl
from core.provenance import is_current

REPO = Path(__file__).resolve().parents[1]


class SweepSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    base: str
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    overrides: list[str] = []
    grid: dict[str, list[Any]] = {}
    paired: dict[str, list[Any]] = {}

    @model_validator(mode="after")
    def _paired_lengths(self) -> "SweepSpec":
        lengths = {len(v) for v in self.paired.values()}
        if len(lengths) > 1:
            raise ValueError(f"paired lists must have one length, got {sorted(lengths)}")
        if any(not v for v in [*self.grid.values(), *self.paired.values()]):
            raise ValueError("grid and paired lists must not be empty")
        return self


def load_sweep(path: str | Path) -> SweepSpec:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: sweep file not found")
    try:
        return SweepSpec.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")) or {})
    except yaml.YAMLError as e:
        raise UserError(f"{path}: invalid YAML ({e})") from None
    except ValidationError as e:
        err = e.errors()[0]
        raise UserError(f"{path}: {'.'.join(map(str, err['loc'])) or '(top level)'}: {err['msg']}") from None


def _value(v: Any) -> str:
    return yaml.safe_dump(v, default_flow_style=True).strip().removesuffix("\n...")


def _slug(assignments: list[tuple[str, Any]]) -> str:
    """A readable experiment name from what varies: budget64-learning_rate0.0001."""
    parts = [f"{key.split('.')[-1]}{_value(v)}" for key, v in assignments]
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", "-".join(parts))[:120] or "point"


def points(spec: SweepSpec) -> list[list[str]]:
    """Every experiment's overrides, the grid's last key varying fastest."""
    grid = [[(k, v) for v in values] for k, values in spec.grid.items()]
    n_paired = len(next(iter(spec.paired.values()))) if spec.paired else 1
    paired = [[(k, values[i]) for k, values in spec.paired.items()] for i in range(n_paired)]
    out = []
    for combo in itertools.product(*grid, paired):
        assignments = [*combo[:-1], *combo[-1]]
        name = f"{spec.name}-{_slug(assignments)}" if assignments else spec.name
        out.append([*spec.overrides, *(f"{k}={_value(v)}" for k, v in assignments), f"name={name}"])
    return out


def expand(spec: SweepSpec, output_dir: str = "runs") -> list[tuple[ExperimentConfig, list[str]]]:
    """Validated configs of every point (all checked before anything runs), with their overrides."""
    base = REPO / spec.base if not Path(spec.base).is_absolute() else Path(spec.base)
    common = [f"output_dir={Path(output_dir) / spec.name}", f"wandb.group={spec.name}"]
    configs = []
    for overrides in points(spec):
        overrides = [*overrides, *common]
        try:
            configs.append((load_config(base, overrides), overrides))
        except UserError as e:
            raise UserError(f"sweep {spec.name}: point {' '.join(overrides)}: {e}") from None
    names = [c.name for c, _ in configs]
    if len(set(names)) != len(names):
        raise UserError(f"sweep {spec.name}: two points get the same experiment name; vary fewer keys by name")
    return configs


def is_finished(cfg: ExperimentConfig) -> bool:
    """A finished experiment has its report, a config.hash equal to this point's and every result computed under
    this code's protocol (a point finished by older code is run again: its stale records are recomputed)."""
    run = Path(cfg.output_dir).resolve() / cfg.name
    hash_file, results = run / "config.hash", run / "results.jsonl"
    if not ((run / "report.md").is_file() and hash_file.is_file() and hash_file.read_text().strip() == cfg.hash()
            and results.is_file()):
        return False
    try:
        records = read_jsonl(results)
        return bool(records) and all(is_current(r) for r in records)
    except ValueError:   # a damaged results.jsonl: the run's evaluation rewrites it
        return False


def slurm_script(spec: SweepSpec, configs: list[tuple[ExperimentConfig, list[str]]], sweep_path: str,
                 gpus_per_node: int, nodes: int) -> str:
    """A Slurm job array: task i runs point i with DeepSpeed across the job's nodes (hostfile from Slurm)."""
    base = spec.base
    lines = [
        "#!/usr/bin/env bash",
        f"#SBATCH --job-name={spec.name}",
        f"#SBATCH --array=0-{len(configs) - 1}",
        f"#SBATCH --nodes={nodes}",
        f"#SBATCH --gres=gpu:{gpus_per_node}",
        "#SBATCH --output=slurm-%A_%a.out",
        f"# written by ./launch.sh sweep {sweep_path} --slurm; one array task per experiment",
        "set -euo pipefail",
        f"cd {shlex.quote(str(REPO))}",
        'hostfile="hostfile-${SLURM_JOB_ID}-${SLURM_ARRAY_TASK_ID}"',
        f'scontrol show hostnames "$SLURM_JOB_NODELIST" | sed "s/$/ slots={gpus_per_node}/" > "$hostfile"',
        "case $SLURM_ARRAY_TASK_ID in",
    ]
    for i, (_, overrides) in enumerate(configs):
        args = " ".join(shlex.quote(o) for o in overrides)
        lines.append(f"  {i}) ./launch.sh run {shlex.quote(base)} {args} \\\n"
                     f"       deepspeed.hostfile=\"$hostfile\" deepspeed.num_gpus={gpus_per_node} ;;")
    lines.append("esac")
    return "\n".join(lines) + "\n"
