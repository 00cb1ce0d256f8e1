"""A task and a prior source from outside the package, loaded through `plugins:`, run through a whole
experiment (prepare → train under DeepSpeed → eval → report) with no change elsewhere."""
from __future__ import annotations

import json
import os
import shutil
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
  repeat: {langs: [en]}
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


@pytest.fixture(scope="module")
def toy_run(tmp_path_factory, tiny_model) -> Path:
    """The toy experiment, run once for this file's tests."""
    out = tmp_path_factory.mktemp("plugins")
    config = out / "toy.yaml"
    config.write_text(CONFIG)
    proc = subprocess.run([sys.executable, "cli.py", "run", str(config), f"output_dir={out}"], cwd=REPO,
                          env=dict(os.environ, WANDB_MODE="disabled"), capture_output=True, text=True,
                          timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out / "toy"


def test_a_plugin_task_and_prior_run_through_an_experiment(toy_run):
    run = toy_run
    rows = read_jsonl(run / "data" / "train.jsonl")
    assert len(rows) == 8 and {r["task"] for r in rows} == {"repeat"}
    # the DeepSpeed rank imported the plugin too: it validated the config that names the repeat task
    assert json.loads((run / "checkpoints" / "sft" / "train.json").read_text())["cost"]["train_examples"] == 8
    records = {r["arm"]: r for r in read_jsonl(run / "results.jsonl")}
    assert set(records) == {"base", "sft", "pretty-source_prefix-k1", "pretty-frequent-k1"}
    for r in records.values():
        assert r["task"] == "repeat" and r["n_items"] == 4 and 0 <= r["metrics"]["exact"] <= 1
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
    assert "tasks.repeat: Extra inputs are not permitted" in out.stdout, out.stdout + out.stderr


@pytest.mark.parametrize("name, source, words", [
    ("raises", "raise RuntimeError('half-written plugin')", ["RuntimeError", "half-written plugin"]),
    ("syntax", "def broken(:\n", ["SyntaxError"]),
    ("dup_task", "from tasks.base import register\nfrom tests.plugins.toy_task import Repeat\n"
                 "@register\nclass Mt(Repeat):\n    name = 'mt'\n", ["'mt' is registered twice"]),
    ("bad_resample", "from tasks.base import register\nfrom tests.plugins.toy_task import Repeat\n"
                     "@register\nclass Odd(Repeat):\n    name = 'odd'\n    resample = 'accuracy'\n",
     ["resample 'accuracy' is not one of"]),
    ("arm_prior", "from align.priors import PriorSource, register_prior, frequent\n"
                  "register_prior(PriorSource('mine', frequent, needs='arm'))\n", ["arm_method"]),
    ("dup_prior", "from align.priors import PriorSource, register_prior, frequent\n"
                  "register_prior(PriorSource('oracle', frequent))\n", ["'oracle' is registered twice"]),
])
def test_a_plugin_that_fails_is_one_line_at_its_line(tmp_path, monkeypatch, name, source, words):
    """Whatever a plugin does wrong on import (or declares wrong) is said at the config's line, before
    compute."""
    (tmp_path / f"plug_{name}.py").write_text(source)
    monkeypatch.syspath_prepend(str(tmp_path))
    config = tmp_path / "toy.yaml"
    config.write_text(CONFIG.replace("tests.plugins.toy_prior", f"plug_{name}"))
    with pytest.raises(UserError) as e:
        load_config(config)
    assert str(e.value).startswith(f"{config}:2: plugins.1: cannot import 'plug_{name}'"), str(e.value)
    assert all(w in str(e.value) for w in words) and "\n" not in str(e.value)


def test_the_report_goes_on_without_an_absent_plugin(toy_run, tmp_path):
    """Records say what they are judged by: `report` of a plugin's run where the plugin cannot be imported."""
    shutil.copytree(toy_run, tmp_path / "toy", ignore=shutil.ignore_patterns("checkpoints"))
    env = dict(os.environ, WANDB_MODE="disabled")
    saved = tmp_path / "toy" / "config.yaml"
    saved.write_text(saved.read_text().replace("tests.plugins.toy_task", "no_longer_installed"))
    (tmp_path / "toy" / "report.md").unlink()
    report = subprocess.run([sys.executable, "cli.py", "report", str(tmp_path / "toy")], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=300)
    assert report.returncode == 0, report.stderr[-2000:]
    assert "reporting from the records alone" in report.stderr
    assert "exact match" in (tmp_path / "toy" / "report.md").read_text()   # the record's own quality


def test_a_plugin_task_imported_in_this_process_is_not_written_into_other_runs_configs():
    """A plugin imported here (as test_a_missing_plugin... does) registers its task in this process: a config
    that does not use it must not carry its key into config.yaml, which DeepSpeed ranks without the plugin
    read."""
    import yaml

    import tests.plugins.toy_task  # noqa: F401
    from core.config import dump_config

    cfg = load_config(REPO / "configs" / "experiments" / "smoke.yaml")
    assert "repeat" not in yaml.safe_load(dump_config(cfg))["tasks"]
