"""Kernel options: `model.attention` (auto, eager, sdpa, flash_attention_2) loads training and evaluation
models with that implementation and every record names the one used; an arm's `use_liger_kernel` reaches the
Trainer. Both are new fields that leave existing configs' hashes alone, and a kernel this machine cannot run
is refused before any compute with exit code 2 and one line naming the field."""
import importlib
from pathlib import Path

import pytest
import torch

import cli
import eval.run as evaluation
from core.config import load_config
from core.prepare import prepare
from core.provenance import stamp

REPO = Path(__file__).resolve().parents[1]
SMOKE = REPO / "configs" / "experiments" / "smoke.yaml"
EXPERIMENTS = sorted((REPO / "configs" / "experiments").glob("*.yaml"))


def _usable(module: str) -> bool:
    try:
        importlib.import_module(module)
    except Exception:
        return False
    return torch.cuda.is_available()


# ---------------------------------------------------------------- the config hash


@pytest.mark.parametrize("path", EXPERIMENTS, ids=lambda p: p.stem)
def test_new_fields_at_their_default_keep_every_config_hash(path):
    """model.attention: auto and use_liger_kernel: false are what every existing config meant: the same hash,
    written or not (so no finished run or sweep point is recomputed); any other value changes it."""
    cfg = load_config(path)
    trained = [i for i, a in enumerate(cfg.arms) if hasattr(a, "use_liger_kernel")]
    explicit = ["model.attention=auto", *(f"arms.{i}.use_liger_kernel=false" for i in trained)]
    assert load_config(path, explicit).hash() == cfg.hash()
    assert load_config(path, ["model.attention=eager"]).hash() != cfg.hash()
    if trained:
        assert load_config(path, [f"arms.{trained[0]}.use_liger_kernel=true"]).hash() != cfg.hash()
    # the resolved config a run directory keeps says it, and reads back to the same hash
    from core.config import dump_config
    assert "attention: auto" in dump_config(cfg)


# ---------------------------------------------------------------- refused before any compute


def _refused(tmp_path, capsys, *overrides) -> str:
    """cli.main on the smoke experiment with these overrides: exit 2, one line, nothing written."""
    code = cli.main(["run", str(SMOKE), f"output_dir={tmp_path}/runs", *overrides])
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert len(err.splitlines()) == 1 and err.startswith("error: "), err
    assert not (tmp_path / "runs").exists()
    return err


@pytest.mark.skipif(_usable("flash_attn"), reason="flash-attn and a GPU are usable here")
def test_flash_attention_without_its_package_is_refused(tmp_path, capsys):
    err = _refused(tmp_path, capsys, "model.attention=flash_attention_2")
    assert "model.attention" in err and "flash_attention_2" in err and "flash-attn" in err


def test_flash_attention_in_float32_is_refused_on_any_machine(tmp_path, capsys):
    """flash-attn computes in bf16/fp16 only; transformers would merely warn and the first forward fail."""
    err = _refused(tmp_path, capsys, "model.attention=flash_attention_2", "model.dtype=float32")
    assert "model.attention" in err and "float32" in err and "bfloat16" in err


def test_an_unknown_attention_is_refused(tmp_path, capsys):
    assert "model.attention" in _refused(tmp_path, capsys, "model.attention=fast")


@pytest.mark.skipif(_usable("liger_kernel.transformers"), reason="liger-kernel and a GPU are usable here")
def test_liger_without_its_package_or_a_gpu_is_refused(tmp_path, capsys):
    err = _refused(tmp_path, capsys, "arms.sft.use_liger_kernel=true")
    assert "arms.1.use_liger_kernel" in err and "liger-kernel" in err


def test_liger_on_a_pretraining_arm_under_zero3_is_refused(tmp_path, capsys, monkeypatch):
    """Where Liger runs, its fused cross-entropy on the transformers Trainer (cpt, mixed) reads the LM head's
    weight directly, an empty shard under ZeRO-3 (smoke.yaml's): refused, naming the arm's field."""
    import core.prepare

    monkeypatch.setattr(core.prepare, "_unusable", lambda module, package: None)   # as on a GPU with Liger
    err = _refused(tmp_path, capsys, "arms=[{method: cpt, langs: [de], use_liger_kernel: true}]")
    assert "arms.0.use_liger_kernel" in err and "ZeRO-3" in err


# ---------------------------------------------------------------- what is loaded, and recorded


def _run(tmp_path, *overrides):
    cfg = load_config(SMOKE, [f"output_dir={tmp_path}", "data.test_size=2", "wandb.mode=disabled",
                              "tasks.mt.test=[{source: bible}]", "eval.max_new_tokens=4",
                              "arms=[{method: base}]", *overrides])
    return cfg, prepare(cfg, SMOKE)


@pytest.mark.parametrize("attention, used", [("auto", "sdpa"), ("eager", "eager")])
def test_the_eval_record_names_the_attention_used(tmp_path, attention, used):
    cfg, run_dir = _run(tmp_path / "runs", f"model.attention={attention}")
    (record,) = evaluation.Evaluator(cfg, run_dir).run()
    assert record["attention"] == used and record["dtype"] == "float32"


def test_training_loads_the_configured_attention_and_train_json_names_it(tmp_path, tiny_model, monkeypatch):
    """train/trainer.py loads the ranks' model with attn_implementation; the Ledger notes what it runs, which
    train/run.py stamps into train.json."""
    import deepspeed

    from train import trainer as common

    monkeypatch.setattr(deepspeed, "init_distributed", lambda *a, **k: None)   # no process group here
    monkeypatch.setattr(common, "used_attention", None)
    cfg = load_config(SMOKE, [f"output_dir={tmp_path}", "model.attention=eager"])
    model = common.load_model(cfg, tiny_model)
    assert model.config._attn_implementation == "eager"
    common.Ledger(model, cfg)
    assert stamp(cfg.model.dtype, attention=common.used_attention)["attention"] == "eager"


def test_use_liger_kernel_reaches_the_trainer_arguments(tmp_path):
    from train import trainer as common

    cfg = load_config(SMOKE, [f"output_dir={tmp_path}", "arms.sft.use_liger_kernel=true"])
    assert common.common_args(cfg, cfg.arm("sft"), tmp_path)["use_liger_kernel"] is True
    assert common.common_args(cfg, cfg.arm("lora"), tmp_path)["use_liger_kernel"] is False
