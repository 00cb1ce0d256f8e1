"""COMET beside BLEU/chrF (eval.comet), scored in an environment of its own (eval/comet.py).

The real COMET environment (unbabel-comet, torch) and its model cannot be downloaded in this test: a fake
environment stands in for it. Its `bin/python` is a tiny script that runs the real runner
(eval/comet_runner.py) with a fake `comet` module whose model scores each translation by its length, and
that fails on request. What is tested is ours: the runner's protocol, the metric, the record of which model
scored, the per-item scores, the report's column, and that any failure is a skip with one line, never a crash
and never a number. `./launch.sh comet-setup` builds the real environment.
"""
from __future__ import annotations

import hashlib
import json
import shutil
import sys
from pathlib import Path

import pytest

from core.config import CometSpec, load_config
from core.data import hub
from eval import comet
from eval.comet import comet_scores
from eval.mt import score_translations

REPO = Path(__file__).resolve().parents[1]
SMOKE = REPO / "configs" / "experiments" / "smoke.yaml"
SRCS = ["The dog sleeps.", "It rains today in the city."]
HYPS = ["Der Hund schläft.", "Heute regnet es in der Stadt."]
REFS = ["Der Hund schläft.", "Es regnet heute in der Stadt."]

FAKE_COMET = '''
"""Stands in for unbabel-comet (the real package and model cannot be downloaded in tests)."""
import os
__version__ = "0.0-fake"


def download_model(name):
    if name == "Unbabel/not-reachable":
        raise OSError("We couldn't connect to 'https://huggingface.co' to load this model (fake)")
    return f"/hub-cache/{name}/checkpoints/model.ckpt"


class Prediction:
    def __init__(self, scores):
        self.scores, self.system_score = scores, sum(scores) / len(scores)


class Model:
    def predict(self, samples, batch_size, gpus, progress_bar):
        if os.environ.get("FAKE_COMET_CRASH"):
            raise RuntimeError("CUDA out of memory (fake)")
        return Prediction([len(s["mt"]) / 100 + len(s["src"]) / 1000 for s in samples])


def load_from_checkpoint(path):
    return Model()
'''

FAKE_TORCH = '''
"""Stands in for torch in the fake COMET environment (importing the real one takes seconds)."""
__version__ = "0.0-fake"


class cuda:
    @staticmethod
    def is_available():
        return False
'''

FAKE_PYTHON = '''#!{python}
# The fake COMET environment's interpreter: the real runner, with the fake comet and torch on its path.
import runpy
import sys

sys.path.insert(0, {site!r})
sys.argv = [a for a in sys.argv[1:] if a != "-I"]
runpy.run_path(sys.argv[0], run_name="__main__")
'''


def fake_score(src: str, hyp: str) -> float:
    return len(hyp) / 100 + len(src) / 1000


@pytest.fixture
def fake_env(tmp_path, monkeypatch):
    venv = tmp_path / "venv-comet"
    site = tmp_path / "fake-site"
    for name, text in (("comet", FAKE_COMET), ("torch", FAKE_TORCH)):
        (site / name).mkdir(parents=True)
        (site / name / "__init__.py").write_text(text, encoding="utf-8")
    python = venv / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.write_text(FAKE_PYTHON.format(python=sys.executable, site=str(site)), encoding="utf-8")
    python.chmod(0o755)
    monkeypatch.setenv("YARN_COMET_VENV", str(venv))
    monkeypatch.delenv("FAKE_COMET_CRASH", raising=False)
    monkeypatch.setattr(hub, "offline_reason", lambda: "")   # the fake hub is up
    return venv


def skip_lines(out: str) -> list[str]:
    return [line for line in out.splitlines() if "COMET skipped" in line]


def test_not_set_up_skips_with_one_line_and_no_metric(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("YARN_COMET_VENV", str(tmp_path / "none"))
    scored = score_translations(HYPS, REFS, "de", SRCS, CometSpec(model="Unbabel/wmt22-comet-da"), "mt en-de")
    assert "comet" not in scored["metrics"] and "comet" not in scored["per_item"]
    (line,) = skip_lines(capsys.readouterr().out)
    assert line == (f"[eval] mt en-de: COMET skipped: no COMET environment at {tmp_path / 'none'}; set it up "
                    "with ./launch.sh comet-setup (or point YARN_COMET_VENV at a venv with unbabel-comet)")
    assert scored["comet"]["model"] == "Unbabel/wmt22-comet-da"
    assert "comet-setup" in scored["comet"]["skipped"]
    # without eval.comet nothing is tried and nothing said
    assert "comet" not in score_translations(HYPS, REFS, "de")
    assert capsys.readouterr().out == ""


def test_fake_environment_scores_records_the_model_and_per_item_scores(fake_env, capsys):
    scored = score_translations(HYPS, REFS, "de", SRCS, CometSpec(model="Unbabel/wmt22-comet-da"))
    expected = [fake_score(s, h) for s, h in zip(SRCS, HYPS)]
    assert scored["per_item"]["comet"] == pytest.approx(expected)
    assert scored["metrics"]["comet"] == pytest.approx(sum(expected) / 2)
    assert scored["comet"] == {"model": "Unbabel/wmt22-comet-da", "unbabel_comet": "0.0-fake", "gpus": 0,
                               "checkpoint": "/hub-cache/Unbabel/wmt22-comet-da/checkpoints/model.ckpt",
                               "torch": scored["comet"]["torch"]}
    assert skip_lines(capsys.readouterr().out) == []


def test_a_local_model_is_recorded_by_path_and_hash(fake_env, tmp_path, capsys):
    model = tmp_path / "my-comet"
    (model / "checkpoints").mkdir(parents=True)
    (model / "checkpoints" / "model.ckpt").write_bytes(b"weights")
    result = comet_scores(SRCS, HYPS, REFS, str(model))
    assert result.score is not None
    assert result.info["checkpoint"] == str((model / "checkpoints" / "model.ckpt").resolve())
    assert result.info["sha256"] == hashlib.sha256(b"weights").hexdigest()
    missing = comet_scores(SRCS, HYPS, REFS, str(tmp_path / "gone"))
    assert missing.score is None and missing.scores is None
    (line,) = skip_lines(capsys.readouterr().out)
    assert f"COMET model '{tmp_path / 'gone'}': no such file or directory" in line


@pytest.mark.parametrize("model, crash, why", [
    ("Unbabel/wmt22-comet-da", True, "the COMET runner failed: RuntimeError: CUDA out of memory (fake)"),
    ("Unbabel/not-reachable", False, "the COMET runner failed: OSError: We couldn't connect to "
     "'https://huggingface.co' to load this model (fake)"),
])
def test_a_failing_runner_is_a_skip_naming_the_error(fake_env, monkeypatch, capsys, model, crash, why):
    if crash:
        monkeypatch.setenv("FAKE_COMET_CRASH", "1")
    result = comet_scores(SRCS, HYPS, REFS, model, where="mt en-de")
    assert result.score is None and result.info == {"model": model, "skipped": why}
    assert skip_lines(capsys.readouterr().out) == [f"[eval] mt en-de: COMET skipped: {why}"]


def test_an_offline_hub_is_said_with_the_failure(fake_env, monkeypatch, capsys):
    monkeypatch.setattr(hub, "offline_reason", lambda: "https://huggingface.co unreachable")
    result = comet_scores(SRCS, HYPS, REFS, "Unbabel/not-reachable")
    assert result.score is None
    assert "(the hub: https://huggingface.co unreachable; a model not in the cache cannot be loaded)" in \
        result.info["skipped"]


def test_a_broken_interpreter_or_garbage_output_is_a_skip(fake_env, capsys):
    python = fake_env / "bin" / "python"
    python.write_text("#!/bin/sh\necho 'Segmentation fault' >&2\nexit 139\n", encoding="utf-8")
    result = comet_scores(SRCS, HYPS, REFS, "Unbabel/wmt22-comet-da")
    assert result.info["skipped"] == "the COMET runner failed: Segmentation fault (exit code 139)"
    python.write_text(f"#!{sys.executable}\nimport json, sys\n"   # one score for two items
                      "out = sys.argv[sys.argv.index('--output') + 1]\n"
                      "json.dump({'system_score': 0.5, 'scores': [0.5]}, open(out, 'w'))\n", encoding="utf-8")
    result = comet_scores(SRCS, HYPS, REFS, "Unbabel/wmt22-comet-da")
    assert result.info["skipped"].startswith("the COMET runner gave 1 scores for 2 items")
    assert len(skip_lines(capsys.readouterr().out)) == 2


# ---------------------------------------------------------- records and the report, through an evaluation

@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    """A base arm of the smoke experiment (tiny model, no training), its data prepared once."""
    from core.prepare import prepare

    out = tmp_path_factory.mktemp("comet")
    cfg = load_config(SMOKE, ["arms=[{method: base}]", f"output_dir={out}", "wandb.mode=disabled",
                              "eval.comet={model: Unbabel/wmt22-comet-da}"])
    return cfg, prepare(cfg, SMOKE)


def evaluate(prepared, tmp_path) -> tuple[dict, str]:
    from eval.report import build_report
    from eval.run import Evaluator

    cfg, root = prepared
    run = tmp_path / "run"
    shutil.copytree(root, run)
    (record,) = Evaluator(cfg, run).run()
    build_report(run)
    assert json.loads((run / "results" / "base.mt.en-de.json").read_text()) == record   # written
    return record, (run / "report.md").read_text(encoding="utf-8")


def test_a_record_scored_by_comet_and_its_report_column(prepared, fake_env, tmp_path, capsys):
    record, report = evaluate(prepared, tmp_path)
    expected = [fake_score(s, h) for s, h in zip([s["source"] for s in record["samples"]],
                                                    record["per_item"]["output"])]
    assert record["per_item"]["comet"][:len(expected)] == pytest.approx(expected)
    assert record["metrics"]["comet"] == pytest.approx(sum(record["per_item"]["comet"]) / record["n_items"])
    assert record["comet"]["model"] == "Unbabel/wmt22-comet-da" and record["comet"]["unbabel_comet"]
    header = next(line for line in report.splitlines() if line.startswith("| arm |"))
    assert "| chrF ±95% | COMET |" in header
    assert "COMET: `Unbabel/wmt22-comet-da` (unbabel-comet 0.0-fake)" in report
    assert skip_lines(capsys.readouterr().out) == []


def test_a_crashing_runner_still_writes_the_record_without_comet(prepared, fake_env, monkeypatch, tmp_path,
                                                                 capsys):
    monkeypatch.setenv("FAKE_COMET_CRASH", "1")
    record, report = evaluate(prepared, tmp_path)
    assert "comet" not in record["metrics"] and "comet" not in record["per_item"]
    assert record["metrics"]["chrf"] >= 0 and record["comet"]["skipped"].endswith("CUDA out of memory (fake)")
    assert skip_lines(capsys.readouterr().out) == [
        "[eval] mt en-de: COMET skipped: the COMET runner failed: RuntimeError: CUDA out of memory (fake)"]
    assert "COMET" not in next(line for line in report.splitlines() if line.startswith("| arm |"))


def test_the_comet_option_unset_keeps_config_hashes():
    """eval.comet unset is left out of the hash: no existing run is redone for it (demo's hash as pinned
    in tests/test_budget_uses.py); set, it is part of the experiment."""
    demo = REPO / "configs" / "experiments" / "demo.yaml"
    assert load_config(demo).hash() == "6885e90bcc3c8e8f"
    for path in (REPO / "configs" / "experiments").glob("*.yaml"):
        cfg = load_config(path)
        if cfg.eval.comet is None:
            assert "comet" not in cfg.model_dump(mode="json", exclude_none=True)["eval"]
    assert load_config(demo, ["eval.comet={model: Unbabel/wmt22-comet-da}"]).hash() != "6885e90bcc3c8e8f"


# A COMET model of random weights on a 2-layer BERT with a 40-word vocabulary, built in the COMET
# environment: its scores mean nothing, but it goes through unbabel-comet's own load_from_checkpoint and
# predict, as a real model does (a real one cannot be downloaded here).
TINY_COMET = '''
import os, sys
import pytorch_lightning as pl
import torch
import yaml
from transformers import BertConfig, BertModel, BertTokenizerFast
from comet.models import RegressionMetric

out = sys.argv[1]
enc = os.path.join(out, "encoder")
os.makedirs(enc)
words = "[PAD] [UNK] [CLS] [SEP] [MASK] the dog sleeps der hund schläft .".split()
words += list("abcdefghijklmnopqrstuvwxyz")
with open(os.path.join(enc, "vocab.txt"), "w") as f:
    f.write("\\n".join(words) + "\\n")
BertModel(BertConfig(vocab_size=len(words), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                     intermediate_size=64, max_position_embeddings=128)).save_pretrained(enc)
BertTokenizerFast(os.path.join(enc, "vocab.txt")).save_pretrained(enc)
torch.manual_seed(0)
model = RegressionMetric(encoder_model="BERT", pretrained_model=enc, hidden_sizes=[64], train_data=[],
                         validation_data=[])
os.makedirs(os.path.join(out, "checkpoints"))
with open(os.path.join(out, "hparams.yaml"), "w") as f:
    yaml.safe_dump(dict(model.hparams), f)
torch.save({"state_dict": model.state_dict(), "hyper_parameters": dict(model.hparams),
            "pytorch-lightning_version": pl.__version__}, os.path.join(out, "checkpoints", "model.ckpt"))
'''


def test_a_real_comet_environment_scores_a_local_model(tmp_path, capsys):
    """Only where `./launch.sh comet-setup` was run (or YARN_COMET_VENV names such an environment)."""
    import subprocess

    python = comet.venv_dir() / "bin" / "python"
    if not python.exists() or subprocess.run([str(python), "-I", "-c", "import comet"],
                                             capture_output=True).returncode != 0:
        pytest.skip(f"no COMET environment at {comet.venv_dir()} (./launch.sh comet-setup builds one)")
    built = subprocess.run([str(python), "-I", "-W", "ignore", "-c", TINY_COMET, str(tmp_path / "tiny")],
                           capture_output=True, text=True)
    assert built.returncode == 0, built.stderr[-2000:]
    result = comet_scores(SRCS, HYPS, REFS, str(tmp_path / "tiny"))
    assert result.score is not None and len(result.scores) == 2, capsys.readouterr().out
    assert result.score == pytest.approx(sum(result.scores) / 2)
    assert result.info["unbabel_comet"] and result.info["sha256"] and result.info["gpus"] in (0, 1)
