"""Sweeps: a grid (and paired lists) over any config fields, expanded into experiments that run one after
another, share one W&B group, and skip what is already finished.

    base: configs/experiments/demo.yaml      # the experiment every point starts from
    name: budget-sweep                       # W&B group; experiments go to runs/<name>/<experiment>
    overrides: [data.test_size=50]           # applied to every point
    grid:                                    # every combination of these ...
      data.budget: [64, 256, 1024]
    paired:                                  # ... with each position of these lists (same length), zipped
      arms.sft.learning_rate: [5.0e-5, 1.0e-4]   # an arm by name (or index: arms.1)
      arms.sft.epochs: [1, 2]
"""
from __future__ import annotations

import hashlib
import itertools
import re
import shlex
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

from core.config import ExperimentConfig, Name, error_at, line_of, load_config, read_yaml
from core.errors import UserError
from core.io import read_jsonl
from core.provenance import is_current
from core.rundir import RunDir

REPO = Path(__file__).resolve().parents[1]


class SweepSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    base: str
    name: Name
    overrides: list[str] = []
    grid: dict[str, list[Any]] = {}
    paired: dict[str, list[Any]] = {}

    @model_validator(mode="after")
    def _paired_lengths(self) -> "SweepSpec":
        if not self.grid and not self.paired:
            raise ValueError("a sweep needs grid or paired values (one experiment: ./launch.sh run)")
        lengths = {len(v) for v in self.paired.values()}
        if len(lengths) > 1:
            raise ValueError(f"paired lists must have one length, got {sorted(lengths)}")
        for what, lists in (("grid", self.grid), ("paired", self.paired)):
            for key, values in lists.items():
                if not values:
                    raise ValueError(f"{what}.{key}: empty list")
        return self


def load_sweep(path: str | Path) -> SweepSpec:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: sweep file not found")
    try:
        return SweepSpec.model_validate(read_yaml(path) or {})
    except ValidationError as e:
        loc, msg = error_at(e.errors()[0])
        line = line_of(path, loc)
        where = f"{path}:{line}" if line else str(path)
        raise UserError(f"{where}: {'.'.join(map(str, loc)) or '(top level)'}: {msg}") from None


def _value(v: Any) -> str:
    return yaml.safe_dump(v, default_flow_style=True).strip().removesuffix("\n...")


def _point_name(sweep: str, assignments: list[tuple[str, Any]]) -> str:
    """A readable, valid (core.config.check_name) experiment name from what varies:
    budget-sweep-budget64-learning_rate0p0001. Cut to 64 characters, it ends with a hash of the whole, so
    points stay apart."""
    slug = "-".join(f"{key.split('.')[-1]}{_value(v)}" for key, v in assignments)
    name = re.sub(r"[^A-Za-z0-9_-]+", "_", f"{sweep}-{slug}".replace(".", "p"))
    if len(name) <= 64:
        return name
    return f"{name[:55]}-{hashlib.sha256(slug.encode()).hexdigest()[:8]}"


def points(spec: SweepSpec) -> list[list[str]]:
    """Every experiment's overrides, the grid's last key varying fastest."""
    grid = [[(k, v) for v in values] for k, values in spec.grid.items()]
    n_paired = len(next(iter(spec.paired.values()))) if spec.paired else 1
    paired = [[(k, values[i]) for k, values in spec.paired.items()] for i in range(n_paired)]
    out = []
    for combo in itertools.product(*grid, paired):
        assignments = [*combo[:-1], *combo[-1]]
        name = _point_name(spec.name, assignments)
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
        raise UserError(f"sweep {spec.name}: two points get the same experiment name; "
                        "vary fewer keys by name")
    return configs


def is_finished(cfg: ExperimentConfig, split: str = "test") -> bool:
    """A finished experiment has its report (of `split`), a config.hash equal to this point's and every result
    computed under this code's protocol (a point finished by older code is run again: its stale records are
    recomputed)."""
    run = RunDir.of(cfg, split)
    hash_file, results = RunDir.of(cfg).config_hash, run.results
    if not (run.report("md").is_file() and hash_file.is_file() and hash_file.read_text().strip() == cfg.hash()
            and results.is_file()):
        return False
    try:
        records = read_jsonl(results)
        return bool(records) and all(is_current(r) for r in records)
    except UserError:   # a damaged results.jsonl: the run's evaluation rewrites it
        return False


def slurm_script(spec: SweepSpec, configs: list[tuple[ExperimentConfig, list[str]]], sweep_path: str,
                 gpus_per_node: int, nodes: int) -> str:
    """A Slurm job array: task i runs point i with DeepSpeed across the job's nodes (hostfile from Slurm).
    Every value is shell-quoted: a path or an override is text from the user, never a command."""
    base = shlex.quote(spec.base)
    sweep = shlex.quote(sweep_path)
    sweep = sweep if sweep.isprintable() else repr(sweep_path)   # a line break would end the comment
    lines = [
        "#!/usr/bin/env bash",
        f"#SBATCH --job-name={shlex.quote(spec.name)}",
        f"#SBATCH --array=0-{len(configs) - 1}",
        f"#SBATCH --nodes={nodes}",
        f"#SBATCH --gres=gpu:{gpus_per_node}",
        "#SBATCH --output=slurm-%A_%a.out",
        f"# written by ./launch.sh sweep {sweep} --slurm; one array task per experiment",
        "set -euo pipefail",
        f"cd {shlex.quote(str(REPO))}",
        'hostfile="hostfile-${SLURM_JOB_ID}-${SLURM_ARRAY_TASK_ID}"',
        f'scontrol show hostnames "$SLURM_JOB_NODELIST" | sed "s/$/ slots={gpus_per_node}/" > "$hostfile"',
        "case $SLURM_ARRAY_TASK_ID in",
    ]
    for i, (_, overrides) in enumerate(configs):
        args = " ".join(shlex.quote(o) for o in overrides)
        lines.append(f"  {i}) ./launch.sh run {base} {args} \\\n"
                     f"       deepspeed.hostfile=\"$hostfile\" deepspeed.num_gpus={gpus_per_node} ;;")
    lines.append("esac")
    return "\n".join(lines) + "\n"
