"""Results that cannot be stale, timed without set-up, and never charged zero for an unknown training cost
(fairness rules 3 and 6), through the evaluation stage on the tiny model in-process."""
import json
import shutil
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

import eval.run as evaluation
from core.config import load_config
from core.io import hash_weights
from core.prepare import prepare
from core.provenance import PROTOCOL
from core.sweep import is_finished
from core.rundir import RunDir
from train.launch import _current

SMOKE = Path("configs/experiments/smoke.yaml")


def _run(tmp_path, arms: str):
    cfg = load_config(SMOKE, [f"output_dir={tmp_path}", "data.test_size=4", "wandb.mode=disabled",
                              "tasks.mt.test=[{source: bible}]", arms])
    return cfg, prepare(cfg, SMOKE)


@pytest.fixture
def outside_models(tmp_path, tiny_model):
    """A copy of the tiny model without train.json (a model from elsewhere) and one with a train.json beside
    it (another run's checkpoint)."""
    plain = tmp_path / "elsewhere"
    shutil.copytree(tiny_model, plain)
    ckpt = tmp_path / "other-run" / "checkpoints" / "sft"
    shutil.copytree(tiny_model, ckpt / "model")
    (ckpt / "train.json").write_text(json.dumps({"method": "sft", "protocol": PROTOCOL,
                                                 "weights_sha256": hash_weights(ckpt / "model"), "cost": {
        "train_examples": 64, "train_tokens": 5000, "train_flops": 1.5e12, "train_wall_s": 100.0,
        "train_device_s": 100.0, "train_peak_mem_mb": 900.0}}))
    return plain, ckpt / "model"


def test_unknown_training_cost_is_null_and_a_known_one_is_read(tmp_path, outside_models):
    plain, ckpt = outside_models
    cfg, run_dir = _run(tmp_path / "runs",
                        f"arms=[{{method: base}}, {{method: base, name: outside, model: {plain}}}, "
                        f"{{method: pretty, prior: task_model, task_model: {ckpt}, k: 1}}]")
    records = {r["arm"]: r for r in evaluation.Evaluator(cfg, run_dir).run()}
    assert records["base"]["cost"]["train_flops"] == 0                      # the experiment's own base model
    assert records["outside"]["cost"]["train_flops"] is None                # unknown, not zero
    assert records["outside"]["cost"]["train_examples"] is None
    prior = records["pretty-task_model-k1"]["cost"]
    assert prior["train_tokens"] == 5000 and prior["train_flops"] == 1.5e12  # its train.json's cost, not zero


def test_loading_and_warm_up_are_outside_the_clock(tmp_path, monkeypatch):
    cfg, run_dir = _run(tmp_path / "runs", "arms=[{method: base}]")
    real = evaluation.load_model

    def slow_load(*args, **kwargs):
        time.sleep(3)
        return real(*args, **kwargs)

    monkeypatch.setattr(evaluation, "load_model", slow_load)
    start = time.time()
    (record,) = evaluation.Evaluator(cfg, run_dir).run()
    assert 0 < record["cost"]["eval_wall_s"] < time.time() - start - 3   # the 3 s of loading are not in it


def test_records_and_checkpoints_of_another_protocol_are_recomputed(tmp_path, capsys):
    cfg, run_dir = _run(tmp_path / "runs", "arms=[{method: base}]")
    (record,) = evaluation.Evaluator(cfg, run_dir).run()
    assert record["protocol"] == PROTOCOL and record["versions"]["torch"] and record["dtype"] == "float32"
    path = run_dir / "results" / "base.mt.en-de.json"
    path.write_text(json.dumps(record | {"protocol": 1, "metrics": {"chrf": 99.0}}))
    (again,) = evaluation.Evaluator(cfg, run_dir).run()
    assert "protocol 1" in capsys.readouterr().out and again["metrics"]["chrf"] == record["metrics"]["chrf"]

    (run_dir / "report.md").write_text("")
    assert is_finished(cfg)
    path.write_text(json.dumps(again | {"protocol": 1}))
    evaluation.Evaluator(cfg, run_dir).gather()
    assert not is_finished(cfg)                                            # a sweep runs this point again

    stale = run_dir / "checkpoints" / "sft"
    (stale / "model").mkdir(parents=True)
    (stale / "train.json").write_text(json.dumps({"cost": {}}))            # written before protocols existed
    assert not _current(RunDir(run_dir), "sft") and not stale.exists()


def test_data_that_changed_under_the_same_config_is_not_reused(tmp_path, capsys):
    cfg, run_dir = _run(tmp_path / "runs", "arms=[{method: base}]")
    (record,) = evaluation.Evaluator(cfg, run_dir).run()
    test_file = run_dir / "data" / "test.jsonl"
    assert record["data_sha256"] and record["split"] == "test"
    rows = test_file.read_text().splitlines()
    test_file.write_text("\n".join([rows[0].replace('"tgt": "', '"tgt": "Anders: '), *rows[1:]]) + "\n")
    (again,) = evaluation.Evaluator(cfg, run_dir).run()
    assert ": kept " not in capsys.readouterr().out and again["data_sha256"] != record["data_sha256"]

    train_file = run_dir / "data" / "train.jsonl"
    ckpt = run_dir / "checkpoints" / "sft"
    (ckpt / "model").mkdir(parents=True)
    (ckpt / "train.json").write_text(json.dumps({"protocol": PROTOCOL, "data_sha256": "0" * 64, "cost": {},
                                                 "arm": "sft", "method": "sft", "weights_sha256": "0"}))
    # other data: trained again
    assert not _current(RunDir(run_dir), "sft", train_file) and not ckpt.exists()


def test_the_dev_split_is_evaluated_apart_from_the_test(tmp_path):
    cfg, run_dir = _run(tmp_path / "runs", "arms=[{method: base}]")
    (dev,) = evaluation.Evaluator(cfg, run_dir, "dev").run()
    assert dev["split"] == "dev" and (run_dir / "dev" / "results.jsonl").is_file()
    assert not (run_dir / "results.jsonl").exists()                     # the test split is untouched
    assert all(i.startswith("bible:17.") for i in dev["per_item"]["id"])  # Esther, held out from training


def test_a_cost_counted_under_another_protocol_is_unknown(tmp_path, outside_models):
    _, ckpt = outside_models
    record = ckpt.parent / "train.json"
    record.write_text(record.read_text().replace(f'"protocol": {PROTOCOL}', '"protocol": 1'))
    cfg, run_dir = _run(tmp_path / "runs", f"arms=[{{method: base}}, {{method: pretty, prior: task_model, "
                                           f"task_model: {ckpt}, k: 1}}]")
    records = {r["arm"]: r for r in evaluation.Evaluator(cfg, run_dir).run()}
    assert records["pretty-task_model-k1"]["cost"]["train_flops"] is None


def test_a_checkpoint_started_from_a_retrained_one_is_trained_again(tmp_path):
    ckpt = tmp_path / "checkpoints" / "cpt-sft"
    (ckpt / "model").mkdir(parents=True)
    save_file({"w": torch.zeros(2)}, ckpt / "model" / "model.safetensors")
    (ckpt / "train.json").write_text(json.dumps({"protocol": PROTOCOL, "start_weights_sha256": "old",
                                                 "arm": "cpt-sft", "method": "sft",
                                                 "weights_sha256": hash_weights(ckpt / "model")}))
    assert _current(RunDir(tmp_path), "cpt-sft", None, "old")
    assert not _current(RunDir(tmp_path), "cpt-sft", None, "new") and not ckpt.exists()
