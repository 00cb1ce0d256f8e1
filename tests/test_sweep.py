"""Sweeps: grid expansion, validation before anything runs, skipping finished points, one W&B group, the
sweep-wide report, and the Slurm job array."""
from pathlib import Path

import pytest

import cli
from core.errors import UserError
from core.io import read_jsonl
from core.sweep import SweepSpec, expand, points
from tests.wandb_offline import runs

REPO = Path(__file__).resolve().parents[1]
SMOKE_SWEEP = str(REPO / "configs" / "sweeps" / "smoke.yaml")


def test_grid_times_paired():
    spec = SweepSpec(base="configs/experiments/smoke.yaml", name="s", overrides=["seed=1"],
                     grid={"data.budget": [8, 16], "eval.batch_size": [2, 4]},
                     paired={"arms.1.epochs": [1, 2], "arms.1.learning_rate": [0.1, 0.2]})
    got = points(spec)
    assert len(got) == 2 * 2 * 2
    assert got[0] == ["seed=1", "data.budget=8", "eval.batch_size=2", "arms.1.epochs=1",
                      "arms.1.learning_rate=0.1", "name=s-budget8-batch_size2-epochs1-learning_rate0p1"]
    assert got[-1][1:5] == ["data.budget=16", "eval.batch_size=4", "arms.1.epochs=2",
                            "arms.1.learning_rate=0.2"]


def test_every_point_is_validated_before_anything_runs():
    spec = SweepSpec(base="configs/experiments/smoke.yaml", name="s", grid={"data.budgt": [8]})
    with pytest.raises(UserError, match="data.budgt"):
        expand(spec)
    with pytest.raises(ValueError, match="one length"):
        SweepSpec(base="x", name="s", paired={"a": [1, 2], "b": [1]})


def test_sweep_runs_skips_finished_and_reports_across_experiments(tmp_path, capsys, data_dir):
    out = tmp_path / "runs"
    assert cli.main(["sweep", SMOKE_SWEEP, "--output-dir", str(out)]) == 0
    sweep = out / "smoke-sweep"
    budgets = {r["experiment"]: r["budget"]
               for r in read_jsonl(sweep / "smoke-sweep-budget8" / "results.jsonl")}
    assert budgets == {"smoke-sweep-budget8": 8}
    logged = runs(sweep / "smoke-sweep-budget16" / "wandb")
    assert logged and all(r["group"] == "smoke-sweep" for r in logged)
    report = (sweep / "report.md").read_text()
    assert "smoke-sweep-budget8: base" in report and "smoke-sweep-budget16: pretty-frequent-k1" in report
    assert (sweep / "quality_vs_budget.png").stat().st_size > 10_000 and (sweep / "report.html").is_file()
    capsys.readouterr()
    assert cli.main(["sweep", SMOKE_SWEEP, "--output-dir", str(out), "--dry-run"]) == 0
    assert capsys.readouterr().out.count(", finished)") == 2


def test_slurm_job_array(tmp_path):
    script = tmp_path / "sweep.sbatch"
    assert cli.main(["sweep", SMOKE_SWEEP, "--slurm", str(script), "--gpus-per-node", "4",
                     "--nodes", "2"]) == 0
    text = script.read_text()
    assert "#SBATCH --array=0-1" in text and "#SBATCH --nodes=2" in text
    assert "scontrol show hostnames" in text and 'deepspeed.hostfile="$hostfile" deepspeed.num_gpus=4' in text
    assert text.count("./launch.sh run configs/experiments/smoke.yaml") == 2
