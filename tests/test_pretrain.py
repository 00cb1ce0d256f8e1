"""Pretraining arms end to end on the tiny model under the real `deepspeed` launcher: cpt, mixed and the
two-stage cpt -> sft at SFT's token budget, the ledger, and a training process killed with SIGKILL (at a named
fault point) that resumes from its last checkpoint into the same model, losses and W&B run, after refusing a
damaged one; the same on two ranks, both killed after a checkpoint."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from safetensors.torch import load_file

from core.io import read_jsonl
from tests.wandb_offline import read_run

REPO = Path(__file__).resolve().parents[1]
CONFIG = "configs/experiments/pretrain-smoke.yaml"


def env():
    e = dict(os.environ, WANDB_MODE="offline")
    e.pop("WANDB_API_KEY", None)
    return e


@pytest.fixture(scope="module")
def experiment(tmp_path_factory, tiny_model):
    out = tmp_path_factory.mktemp("pretrain") / "runs"
    # evaluation in process: on two ranks it is tests/test_eval_ranks.py's
    proc = subprocess.run([sys.executable, "cli.py", "run", CONFIG, f"output_dir={out}",
                           "eval.in_process=true"], cwd=REPO, env=env(), capture_output=True, text=True,
                          timeout=1200)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return out / "pretrain-smoke"


def train_record(run: Path, arm: str) -> dict:
    return json.loads((run / "checkpoints" / arm / "train.json").read_text())


def test_pretraining_arms_stop_at_exactly_the_tokens_sft_saw(experiment):
    """On two ranks with an odd budget (15 examples, batch 4): SFT trains on each example exactly once (no
    repeats to even out the ranks), and cpt/mixed on exactly those tokens."""
    sft = train_record(experiment, "sft")["cost"]["train_tokens"]
    assert train_record(experiment, "sft")["cost"]["train_device_s"] == pytest.approx(
        2 * train_record(experiment, "sft")["cost"]["train_wall_s"])   # two ranks trained
    manifest = json.loads((experiment / "data" / "manifest.json").read_text())
    for arm, langs in (("cpt", {"de"}), ("mixed", {"en", "de", "fr"})):
        rec = train_record(experiment, arm)
        assert rec["cost"]["train_tokens"] == sft == manifest[f"pretrain {arm}"]["token_budget"]
        assert set(rec["tokens_by_lang"]) == langs and sum(rec["tokens_by_lang"].values()) == sft
        assert rec["tokens_by_lang"] == manifest[f"pretrain {arm}"]["tokens_by_lang"]  # counted == planned
        assert rec["cost"]["train_examples"] == 0 and rec["check"]["tensors_changed"] > 0
    assert all(n > 0 for n in train_record(experiment, "mixed")["tokens_by_lang"].values())
    for arm in ("sft", "cpt", "mixed", "cpt-sft"):
        rec = train_record(experiment, arm)
        # what the ranks ran (model.attention: auto is transformers' sdpa), in the dtype "auto" resolved to
        assert rec["attention"] == "sdpa" and rec["dtype"] == "float32"
        # no activation checkpointing: nothing recomputed, hardware FLOPs = model FLOPs
        assert rec["cost"]["train_hw_flops"] == rec["cost"]["train_flops"] > 0


def test_two_stage_arm_starts_from_cpt_and_adds_both_costs(experiment):
    cpt, two = train_record(experiment, "cpt"), train_record(experiment, "cpt-sft")
    assert two["base_model"] == cpt["model_dir"] and two["init_from"] == "cpt"
    for key in ("train_tokens", "train_flops", "train_device_s", "train_examples"):
        assert two["cost"][key] == pytest.approx(cpt["cost"][key] + two["stage_cost"][key])
    assert two["cost"]["train_stages"] == 2 and two["tokens_by_lang"]["de"] == cpt["tokens_by_lang"]["de"]


def test_every_arm_is_evaluated_and_reported(experiment):
    records = {r["arm"]: r for r in read_jsonl(experiment / "results.jsonl")}
    assert set(records) == {"base", "sft", "cpt", "mixed", "cpt-sft"}
    assert {r["attention"] for r in records.values()} == {"sdpa"}
    assert records["mixed"]["train_tokens_by_lang"].keys() == {"en", "de", "fr"}
    assert records["cpt"]["weights"]["path"].endswith("checkpoints/cpt/model")
    assert records["cpt-sft"]["cost"]["train_stages"] == 2
    report = (experiment / "report.md").read_text()
    assert "| cpt-sft" in report and "| mixed" in report
    flops = records["cpt"]["cost"]["train_flops"]
    assert flops > 6 * records["cpt"]["cost"]["train_tokens"] * 1000   # 6·N·T (+ attention) with N > 1000


def _losses(run: Path, arm: str) -> dict[int, float]:
    """step -> training loss from the arm's log.jsonl; a resumed run's later lines win."""
    return {r["step"]: r["loss"] for r in read_jsonl(run / "checkpoints" / arm / "log.jsonl") if "loss" in r}


def test_sigkilled_training_resumes_to_the_same_model(tmp_path, tiny_model):
    overrides = ["arms=[{method: cpt, langs: [de], batch_size: 4, max_length: 32, logging_steps: 1, "
                 "save_steps: 3, learning_rate: 1.0e-3}]", "data.token_budget=3000", "deepspeed.num_gpus=1"]
    cmd = lambda out: [sys.executable, "cli.py", "run", CONFIG, f"output_dir={out}", *overrides,
                       "--stage", "train"]
    whole = subprocess.run(cmd(tmp_path / "whole"), cwd=REPO, env=env(), capture_output=True, text=True,
                           timeout=900)
    assert whole.returncode == 0, whole.stderr[-3000:]

    # killed (SIGKILL, core/faults.py) right after checkpoint-6 is saved and marked complete: no timed kill
    run = tmp_path / "killed" / "pretrain-smoke"
    fault = {"YARN_FAULT": "kill:checkpoint-saved=checkpoint-6"}
    killed = subprocess.run(cmd(tmp_path / "killed"), cwd=REPO, env=env() | fault, capture_output=True,
                            text=True, timeout=900)
    saved = run / "checkpoints" / "cpt" / "trainer" / "checkpoint-6"
    assert killed.returncode == 1 and (saved / "yarn-rank0.json").is_file()
    assert killed.stderr.strip().splitlines()[-1].startswith("error: training 'cpt' failed")
    assert not (run / "checkpoints" / "cpt" / "train.json").exists()

    # a damaged file of the checkpoint to resume from is refused by name, before any training
    listed = json.loads((saved / "yarn-rank0.json").read_text())["files"]
    assert "model.safetensors" in listed and any("optim_states" in name for name in listed)
    state = next(saved.rglob("*optim_states.pt"))
    pristine = state.read_bytes()
    state.write_bytes(pristine[:1000] + bytes(b ^ 0xFF for b in pristine[1000:1064]) + pristine[1064:])
    refused = subprocess.run(cmd(tmp_path / "killed"), cwd=REPO, env=env(), capture_output=True, text=True,
                             timeout=900)
    assert refused.returncode == 2 and "--num_gpus" not in refused.stdout
    assert refused.stderr.strip().splitlines()[-1].startswith(
        f"error: {state}: differs from what was recorded")
    state.write_bytes(pristine)

    again = subprocess.run(cmd(tmp_path / "killed"), cwd=REPO, env=env(), capture_output=True, text=True,
                           timeout=900)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "resuming from" in again.stdout + again.stderr

    a, b = _losses(tmp_path / "whole" / "pretrain-smoke", "cpt"), _losses(run, "cpt")
    assert len(a) >= 20 and a.keys() == b.keys()
    assert all(abs(a[s] - b[s]) <= 1e-4 for s in a), {s: (a[s], b[s]) for s in a if abs(a[s] - b[s]) > 1e-4}
    rec_a, rec_b = (train_record(tmp_path / d / "pretrain-smoke", "cpt") for d in ("whole", "killed"))
    assert rec_a["tokens_by_lang"] == rec_b["tokens_by_lang"] == {"de": 3000}
    assert rec_a["cost"]["train_tokens"] == rec_b["cost"]["train_tokens"] == 3000
    wa, wb = (load_file(str(Path(r["model_dir"]) / "model.safetensors")) for r in (rec_a, rec_b))
    assert max((wa[k] - wb[k]).abs().max().item() for k in wa) <= 1e-5
    # both processes logged into one W&B run id (offline-run-<time>-<id>); the restart resumed it
    ids = [d.name.split("-", 3)[-1] for d in (run / "wandb").glob("offline-run-*")]
    assert len(ids) == 2 and len(set(ids)) == 1 and ids[0].startswith("pretrain-smoke-cpt-train")
    resumed = max((run / "wandb").glob("offline-run-*"))
    assert any("train/loss" in h for h in read_run(resumed)["history"])


def test_two_ranks_killed_after_a_checkpoint_resume_to_the_same_model(tmp_path, tiny_model, capfd,
                                                                     monkeypatch):
    """Two CPU ranks (ZeRO-2: each rank holds half of the optimizer states), both killed with SIGKILL right
    after checkpoint-3 is saved and marked complete by both; started again, they resume from it and end with
    the losses and weights of an uninterrupted two-rank run. Prepared once (copied), each training through the
    launcher's own `_launch` (the real `deepspeed` command), so the time goes to training, not to set-up."""
    from core.config import load_config
    from core.errors import StageFailed
    from core.prepare import prepare
    from core.rundir import RunDir
    from train.launch import _launch

    cfg = load_config(REPO / CONFIG, [
        f"output_dir={tmp_path}", "deepspeed.num_gpus=2", "wandb.mode=disabled", "data.token_budget=1600",
        "arms=[{method: cpt, langs: [de], batch_size: 4, max_length: 32, logging_steps: 1, save_steps: 3, "
        "learning_rate: 1.0e-3}]"])
    prepared = prepare(cfg, REPO / CONFIG)
    RunDir(prepared).unlock()
    whole, run = (RunDir(shutil.copytree(prepared, tmp_path / name)) for name in ("whole", "killed"))
    job = cfg.job("cpt")
    capfd.readouterr()
    _launch(cfg, whole, job)

    monkeypatch.setenv("YARN_FAULT", "kill:checkpoint-saved=checkpoint-3")   # every rank kills itself there
    with pytest.raises(StageFailed, match="training 'cpt' failed"):
        _launch(cfg, run, job)
    saved = run.trainer("cpt") / "checkpoint-3"
    assert (saved / "yarn-rank0.json").is_file() and (saved / "yarn-rank1.json").is_file()
    assert not run.record("cpt").exists()

    monkeypatch.delenv("YARN_FAULT")
    capfd.readouterr()
    _launch(cfg, run, job)
    out = capfd.readouterr()
    resumed = [line for line in (out.out + out.err).splitlines() if "resuming from" in line]
    assert len(resumed) == 2 and all(line.endswith("checkpoint-3") for line in resumed)   # both ranks

    a, b = _losses(whole.root, "cpt"), _losses(run.root, "cpt")
    assert len(a) >= 6 and a.keys() == b.keys() and min(a) <= 3 < max(a)
    assert all(abs(a[s] - b[s]) <= 1e-4 for s in a), {s: (a[s], b[s]) for s in a if abs(a[s] - b[s]) > 1e-4}
    rec_a, rec_b = (train_record(r.root, "cpt") for r in (whole, run))
    assert rec_a["cost"]["train_tokens"] == rec_b["cost"]["train_tokens"] == 1600
    assert rec_a["tokens_by_lang"] == rec_b["tokens_by_lang"] == {"de": 1600}
    assert rec_b["cost"]["train_device_s"] == pytest.approx(2 * rec_b["cost"]["train_wall_s"])
    # the counters each rank saved in checkpoint-3 were restored: the FLOPs match the uninterrupted run's
    assert rec_a["cost"]["train_flops"] == rec_b["cost"]["train_flops"]
    wa, wb = (load_file(str(Path(r["model_dir"]) / "model.safetensors")) for r in (rec_a, rec_b))
    assert max((wa[k] - wb[k]).abs().max().item() for k in wa) <= 1e-5


def test_a_checkpoint_of_another_run_is_evaluated_with_its_training_cost(experiment, tmp_path):
    checkpoint = experiment / "checkpoints" / "cpt" / "model"
    cmd = [sys.executable, "cli.py", "run", CONFIG, f"output_dir={tmp_path}", "name=probe",
           "data.test_size=6", "tasks={knowledge: {sets: [facts], langs: [en, de]}}",
           f"arms=[{{method: base}}, {{method: base, name: cpt, model: {checkpoint}}}]",
           "eval.in_process=true"]
    proc = subprocess.run(cmd, cwd=REPO, env=env(), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    records = {(r["arm"], r["tgt"]): r for r in read_jsonl(tmp_path / "probe" / "results.jsonl")}
    cpt = train_record(experiment, "cpt")
    assert records[("cpt", "de")]["weights"]["sha256"] == cpt["weights_sha256"]
    assert records[("cpt", "de")]["cost"]["train_tokens"] == cpt["cost"]["train_tokens"]
    assert records[("cpt", "de")]["train_tokens_by_lang"] == cpt["tokens_by_lang"]
    assert records[("base", "de")]["cost"]["train_tokens"] == 0
