"""The demo's whole path on a tiny model: real `deepspeed` launcher with two CPU ranks (ZeRO-3), TRL training,
checkpoint reloads, results.jsonl, W&B offline runs (the W&B server cannot exist here; the offline run file is
what `wandb sync` would upload), the report, and resuming a finished run without redoing work."""
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from core.io import hash_weights, read_jsonl
from tests.conftest import run_cli
from tests.wandb_offline import runs
from train import checks

REPO = Path(__file__).resolve().parents[1]
ARMS = {"base", "sft", "lora", "pretty-sft-k1", "pretty-oracle-k1", "pretty-frequent-k1"}


@pytest.fixture(scope="module")
def smoke(smoke_run, tiny_model):
    run, first = smoke_run
    again = run_cli("run", "configs/experiments/smoke.yaml", f"output_dir={run.parent}", timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    return run, first, again, tiny_model


def test_training_ran_under_the_deepspeed_launcher_with_two_ranks(smoke):
    run, first, _, _ = smoke
    assert "bin/deepspeed --num_gpus 2" in first.stdout
    for arm in ("sft", "lora"):
        cost = json.loads((run / "checkpoints" / arm / "train.json").read_text())["cost"]
        assert cost["train_device_s"] == pytest.approx(2 * cost["train_wall_s"])
        assert cost["train_examples"] == 32 and cost["train_tokens"] > 32 * 20 and cost["train_flops"] > 0


def test_deepspeed_shared_memory_is_given_back(smoke):
    """DeepSpeed's CPU all-reduce buffers (64 MiB a rank in /dev/shm, i.e. RAM) are removed when a job
    (or the evaluation ranks' launch) ends."""
    _, first, _, _ = smoke
    ports = re.findall(r"--master_port (\d+)", first.stdout)
    assert len(ports) == 3   # sft, lora and the evaluation ranks
    left = [p for port in ports for p in Path("/dev/shm").glob(f"deepspeed_allreduce_buffer_*_{port}_*")]
    assert not left, left


def test_checkpoints_reload(smoke):
    run, _, _, tiny = smoke
    assert checks.check_full(run / "checkpoints" / "sft" / "model", tiny)["tensors_changed"] > 0
    assert checks.check_adapter(run / "checkpoints" / "lora" / "model", tiny)["bytes"] > 1000


def test_results_are_complete_and_traceable(smoke):
    run, _, _, _ = smoke
    records = read_jsonl(run / "results.jsonl")
    assert {r["arm"] for r in records} == ARMS and len(records) == len(ARMS)
    config_hash = (run / "config.hash").read_text().strip()
    for r in records:
        assert r["task"] == "mt" and (r["src"], r["tgt"]) == ("en", "de") and r["n_items"] == 8
        assert set(r["metrics"]) == {"bleu", "chrf", "off_target_rate", "off_target_undecided_rate",
                                     "degenerate_rate", "reference_degenerate_rate"}
        assert r["config_hash"] == config_hash and r["git_rev"]
        assert "tok:13a" in r["signatures"]["bleu"]
        assert len(r["samples"]) == 3 and all("output" in s for s in r["samples"])
        # what the report's CIs need
        assert len(r["per_item"]["output"]) == len(r["per_item"]["reference"]) == 8
        assert Path(r["weights"]["path"]).exists()
        assert r["weights"]["sha256"] == hash_weights(r["weights"]["path"])
    by_arm = {r["arm"]: r for r in records}
    # a prior from the SFT model carries the SFT arm's training cost and one extra model call per item
    assert by_arm["pretty-sft-k1"]["cost"]["train_tokens"] == by_arm["sft"]["cost"]["train_tokens"] > 0
    assert by_arm["pretty-sft-k1"]["cost"]["extra_model_calls_per_item"] == 1
    assert by_arm["pretty-oracle-k1"]["prior"]["source"] == "oracle"
    assert all(s["prior"] for s in by_arm["pretty-oracle-k1"]["samples"])
    assert by_arm["lora"]["weights"]["base"]["sha256"] == by_arm["base"]["weights"]["sha256"]


def test_wandb_offline_runs_hold_the_logged_metrics(smoke):
    run, _, _, _ = smoke
    logged = runs(run / "wandb")
    train = {r["name"]: r for r in logged if r["job_type"] == "train"}
    assert {"sft", "lora"} <= set(train)
    assert all(r["group"] == "smoke" for r in logged)
    assert any("train/loss" in h for h in train["sft"]["history"])
    assert train["lora"]["summary"]["cost/train_tokens"] > 0
    evals = {r["name"]: r for r in logged if r["job_type"] == "eval"}
    for rec in read_jsonl(run / "results.jsonl"):
        summary = evals[f"{rec['arm']}-mt-en-de"]["summary"]
        assert summary["mt/en-de/chrf"] == pytest.approx(rec["metrics"]["chrf"])
    report = next(r for r in logged if r["job_type"] == "report")
    assert any(h.get("report/quality: mt: English → German (8 items)/_type") == "table-file"
               for h in report["history"])  # the report's tables as W&B Tables


def test_report_is_rebuilt_from_results_alone(smoke, tmp_path):
    run, first, _, _ = smoke
    for name in ("report.md", "report.html", "report.csv", "quality_vs_cost.png", "quality_vs_k.png"):
        assert (run / name).stat().st_size > 100
    alone = tmp_path / "copy"
    alone.mkdir()
    shutil.copy(run / "results.jsonl", alone)
    proc = subprocess.run([sys.executable, "cli.py", "report", str(alone)], cwd=REPO, capture_output=True,
                          text=True)
    assert proc.returncode == 0, proc.stderr
    table = lambda p: p.read_text().split("## Samples")[0].split("## mt")[1]  # noqa: E731
    assert table(alone / "report.md") == table(run / "report.md")


def test_running_again_resumes_instead_of_redoing(smoke):
    _, _, again, _ = smoke
    assert "bin/deepspeed" not in again.stdout
    assert again.stdout.count("not retrained") == 2
    assert again.stdout.count(": kept ") == len(ARMS)
