from pathlib import Path

import pytest

from core.config import load_config
from core.errors import UserError

REPO = Path(__file__).resolve().parents[1]
SMOKE = REPO / "configs" / "experiments" / "smoke.yaml"


def write(tmp_path, text: str) -> Path:
    p = tmp_path / "x.yaml"
    p.write_text(SMOKE.read_text() + text)
    return p


def test_shipped_configs_validate():
    for path in (REPO / "configs" / "experiments").glob("*.yaml"):
        cfg = load_config(path)
        assert cfg.arms and cfg.units()


def test_pretty_arm_names_and_prior_arm_default():
    cfg = load_config(SMOKE)
    pretty = cfg.arm("pretty-sft-k1")
    assert pretty.from_arm == "sft" and pretty.k == 1
    assert cfg.arm("pretty-oracle-k1").from_arm is None


def test_unknown_key_names_file_line_and_field(tmp_path):
    p = write(tmp_path, "learning_rat: 3\n")
    with pytest.raises(UserError) as e:
        load_config(p)
    n_lines = len(p.read_text().splitlines())
    assert f"x.yaml:{n_lines}: learning_rat" in str(e.value)


def test_unknown_arm_method_is_rejected(tmp_path):
    p = tmp_path / "x.yaml"
    p.write_text(SMOKE.read_text().replace("- {method: base}", "- {method: rlhf}"))
    with pytest.raises(UserError, match=r"x.yaml:\d+: arms.0.*rlhf"):
        load_config(p)


def test_overrides_apply_and_change_the_hash():
    base = load_config(SMOKE)
    cfg = load_config(SMOKE, ["data.budget=16", "arms.1.epochs=2", "eval.batch_size=2"])
    assert cfg.data.budget == 16 and cfg.arms[1].epochs == 2
    assert cfg.hash() != base.hash()
    # where results go and how they are logged does not change what the experiment is
    assert load_config(SMOKE, ["output_dir=/tmp/elsewhere", "wandb.mode=disabled",
                                 "deepspeed.master_port=29999",
                                 "report.usd_per_device_hour=2.5"]).hash() == base.hash()


@pytest.mark.parametrize("override, culprit", [
    ("data.budgt=5", "data.budgt"),
    ("arms.9.k=1", "arms.9"),
    ("data.budget=-1", "data.budget"),
    ("tasks.mt.directions=[en-en]", "tasks.mt.directions"),
    ("tasks.pos.test_langs=[xx]", "tasks.pos.test_langs"),
    ("tasks.mt=null", "at least one task"),
    ("arms.3.from_arm=base", "from_arm"),
    ("noequals", "key=value"),
])
def test_bad_overrides_name_the_culprit(override, culprit):
    with pytest.raises(UserError, match=culprit.replace(".", r"\.")):
        load_config(SMOKE, [override])


def test_duplicate_arm_names_rejected():
    with pytest.raises(UserError, match="unique"):
        load_config(SMOKE, ["arms.2.name=sft"])


def test_task_units_cover_every_direction():
    cfg = load_config(SMOKE, ["tasks.mt.directions=[en-de, en-fr]", "tasks.pos={test_langs: [de, fr]}"])
    assert cfg.units() == [("mt", "en-de"), ("mt", "en-fr"), ("pos", "en-de"), ("pos", "en-fr")]


def test_wandb_table_keys_fit_wandbs_artifact_names():
    """W&B names each logged table's artifact run-<id>-<key> (128 characters at most): a sweep's long run id
    and a long table title once crashed the report stage."""
    from core.tracking import table_key

    run_id = "budget-sweep-budget256-report-report-996fcd8f"
    short = table_key(run_id, "quality: mt: English → German (8 items)", 0)
    assert short == "report/quality: mt: English → German (8 items)"   # short titles are kept as they are
    long = "Break-even: training arm against PreTTY's per-item overhead: mt: English → German"
    keys = {table_key(run_id, long + suffix, i) for i, suffix in enumerate(["", " (again)"])}
    assert len(keys) == 2   # cut titles stay distinct
    import re
    for key in keys:
        assert (key.startswith("report/0")
                and len(re.sub(r"[^a-zA-Z0-9_\-.]+", "", f"run-{run_id}-{key}")) + 7 <= 128)


@pytest.mark.parametrize("name, hub_id", [("llama-3.1-8b", "meta-llama/Llama-3.1-8B"),
                                          ("qwen2.5-7b", "Qwen/Qwen2.5-7B")])
def test_research_scale_configs_are_the_demos_comparison(name, hub_id):
    """Checked offline (the config, not the download): a hub id, bf16 where available, ZeRO-3 over 8 GPUs,
    and the demo's arms at the demo's budget."""
    demo = load_config(REPO / "configs" / "experiments" / "demo.yaml")
    cfg = load_config(REPO / "configs" / "experiments" / f"{name}.yaml")
    assert cfg.model.name == hub_id and cfg.model.dtype == "auto"
    assert cfg.deepspeed.path().is_file() and cfg.deepspeed.num_gpus == 8
    assert '"stage": 3' in cfg.deepspeed.path().read_text()
    assert [a.name for a in cfg.arms] == [a.name for a in demo.arms]
    assert cfg.data.budget == demo.data.budget and cfg.units() == demo.units()


def test_arms_are_addressed_by_name_in_overrides(tmp_path):
    """`arms.sft.epochs` means the sft arm wherever it is in the list; `arms.1.epochs` means position 1."""
    demo = REPO / "configs/experiments/smoke.yaml"
    by_name = load_config(demo, ["arms.sft.epochs=3", "arms.pretty-oracle-k1.k=2"])
    assert by_name.arm("sft").epochs == 3 and by_name.arm("lora").epochs == 1
    assert any(a.method == "pretty" and a.prior == "oracle" and a.k == 2 for a in by_name.arms)
    assert load_config(demo, ["arms.1.epochs=3"]).arm("sft").epochs == 3
    reordered = tmp_path / "reordered.yaml"
    text = demo.read_text()
    sft = next(line for line in text.splitlines() if "method: sft" in line)
    lora = next(line for line in text.splitlines() if "method: lora" in line)
    reordered.write_text(text.replace(sft, "@@").replace(lora, sft).replace("@@", lora))
    moved = load_config(reordered, ["arms.sft.epochs=3"])
    assert moved.arms[2].method == "sft" and moved.arm("sft").epochs == 3 and moved.arm("lora").epochs == 1
    with pytest.raises(UserError,
                       match=r"'nope' is neither an index .* \(names: base, sft, lora, pretty-sft-k1, "):
        load_config(demo, ["arms.nope.epochs=3"])


def test_units_and_jobs_are_each_named_once():
    """A repeated direction would be evaluated twice as two "seeds"; an arm named like a probe would be
    trained in its place."""
    demo = REPO / "configs/experiments/smoke.yaml"
    with pytest.raises(UserError, match=r"smoke.yaml:8: tasks.mt: \['en-de'\] repeated"):
        load_config(demo, ["tasks.mt.directions=[en-de, en-de]"])
    with pytest.raises(UserError, match=r"arms: \['cd-de-base'\] name both an arm and a task's training job"):
        load_config(demo, ["arms=[{method: base}, {method: sft, name: cd-de-base}]",
                           "tasks.conductivity={langs: [de]}"])
