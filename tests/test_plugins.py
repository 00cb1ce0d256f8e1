"""A task and a prior source from outside the package, loaded through `plugins:`, run through a whole
experiment (prepare → train under DeepSpeed → eval → report) with no change elsewhere."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from core.config import load_config
from core.errors import UserError
from core.io import read_jsonl

REPO = Path(__file__).resolve().parents[1]
CONFIG = """\
name: toy
plugins: [tests.plugins.toy_task, tests.plugins.toy_prior]
model: {name: tiny-llama}
tasks:
  copy: {langs: [en]}
data: {budget: 8, test_size: 4}
arms:
  - {method: base}
  - {method: sft, epochs: 1, learning_rate: 1.0e-3, batch_size: 4, logging_steps: 1}
  - {method: pretty, prior: source_prefix, k: 1}
  - {method: pretty, prior: frequent, k: 1}
deepspeed: {num_gpus: 1}
eval: {batch_size: 4, max_new_tokens: 4, samples: 2}
wandb: {mode: disabled}
"""


def test_a_plugin_task_and_prior_run_through_an_experiment(tmp_path, tiny_model):
    config = tmp_path / "toy.yaml"
    config.write_text(CONFIG)
    env = dict(os.environ, WANDB_MODE="disabled")
    proc = subprocess.run([sys.executable, "cli.py", "run", str(config), f"output_dir={tmp_path}"], cwd=REPO,
                          env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    run = tmp_path / "toy"
    rows = read_jsonl(run / "data" / "train.jsonl")
    assert len(rows) == 8 and {r["task"] for r in rows} == {"copy"}
    # the DeepSpeed rank imported the plugin too: it validated the config that names the copy task
    assert json.loads((run / "checkpoints" / "sft" / "train.json").read_text())["cost"]["train_examples"] == 8
    records = {r["arm"]: r for r in read_jsonl(run / "results.jsonl")}
    assert set(records) == {"base", "sft", "pretty-source_prefix-k1", "pretty-frequent-k1"}
    for r in records.values():
        assert r["task"] == "copy" and r["n_items"] == 4 and 0 <= r["metrics"]["exact"] <= 1
    prior = records["pretty-source_prefix-k1"]
    assert prior["prior"]["source"] == "source_prefix" and prior["prior"]["deployable"] is True
    # the prior is the source's first piece: every output starts with its own item's word's beginning
    for sample in prior["samples"]:
        assert sample["prior"] and sample["source"].startswith(sample["prior"].strip())
    report = (run / "report.md").read_text()
    assert "exact %" in report and "pretty-source_prefix-k1" in report


def test_a_missing_plugin_is_named_at_its_line(tmp_path):
    config = tmp_path / "toy.yaml"
    config.write_text(CONFIG.replace("tests.plugins.toy_prior", "tests.plugins.no_such_module"))
    with pytest.raises(UserError,
                       match=r"toy.yaml:2: plugins.1: cannot import 'tests.plugins.no_such_module'"):
        load_config(config)


def test_without_the_plugin_its_task_is_an_unknown_key(tmp_path):
    """Nothing registers by accident: a config naming the task without the plugin fails at the task's line."""
    config = tmp_path / "toy.yaml"
    config.write_text(CONFIG.replace("plugins: [tests.plugins.toy_task, tests.plugins.toy_prior]\n", ""))
    code = ("import sys; from core.config import load_config; from core.errors import UserError\n"
            "try: load_config(sys.argv[1])\nexcept UserError as e: print(e)")
    out = subprocess.run([sys.executable, "-c", code, str(config)], cwd=REPO, capture_output=True, text=True)
    assert "tasks.copy: Extra inputs are not permitted" in out.stdout, out.stdout + out.stderr
