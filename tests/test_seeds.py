"""`seeds:` trains every training arm once per seed; PreTTY arms with a model prior follow their prior's
seed."""
from core.config import load_config

DEMO = "configs/experiments/demo.yaml"


def test_seeds_copy_training_arms_and_their_priors():
    cfg = load_config(DEMO, ["seeds=[0, 1, 2]"])
    runs = {a.name: a for a in cfg.arm_runs()}
    assert {"sft", "sft-seed1", "sft-seed2", "lora-seed2", "pretty-sft-k1-seed1",
            "pretty-sft-k2-seed2"} <= set(runs)
    assert [a.name for a in cfg.arm_runs()].count("base") == 1         # nothing trained: evaluated once
    assert "pretty-oracle-k1-seed1" not in runs                        # reads the reference: no training seed
    assert (runs["sft"].seed, runs["sft-seed2"].seed) == (0, 2)
    assert runs["pretty-sft-k1-seed1"].from_arm == "sft-seed1"
    assert cfg.family("pretty-sft-k1-seed1") == "pretty-sft-k1" and cfg.arm("lora-seed1").method == "lora"


def test_seeds_unset_keep_the_config_hash_and_one_run_per_arm():
    cfg = load_config(DEMO)
    assert [a.name for a in cfg.arm_runs()] == [a.name for a in cfg.arms]
    assert "seeds" not in cfg.model_dump(exclude_none=True)
    assert load_config(DEMO, ["seeds=[0]"]).hash() != cfg.hash()


def test_two_stage_arms_start_from_the_same_seed():
    cfg = load_config("configs/experiments/pretrain.yaml", ["seeds=[3, 4]"])
    runs = {a.name: a for a in cfg.arm_runs()}
    assert runs["cpt-sft-seed4"].init_from == "cpt-seed4" and runs["cpt-sft"].init_from == "cpt"


def test_report_shows_mean_and_sd_over_seeds_beside_the_first_seeds_row(tmp_path):
    import json

    from eval.report import build_report

    def record(arm, family, seed, chrf):
        return {"experiment": "e", "arm": arm, "family": family, "seed": seed, "method": arm.split("-")[0],
                "task": "mt", "src": "en", "tgt": "de", "n_items": 2, "metrics": {"chrf": chrf}, "cost": {}}

    rows = [record("base", "base", None, 20.0), record("sft", "sft", 0, 30.0),
            record("sft-seed1", "sft", 1, 34.0), record("sft-seed2", "sft", 2, 32.0)]
    (tmp_path / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    build_report(tmp_path)
    table = (tmp_path / "report.md").read_text().split("## Samples")[0]
    assert "chrF mean ± sd over seeds" in table and "32.00 ± 2.00 (3)" in table
    assert "sft-seed1" not in table                       # one row per arm: the first seed's
    assert (tmp_path / "report.csv").read_text().count("sft-seed") == 2   # every seed's record in the CSV


def test_a_seed_copy_may_not_take_another_arms_name():
    import pytest

    from core.errors import UserError

    with pytest.raises(UserError, match="clash"):
        load_config(DEMO, ["seeds=[0, 1]", "arms.5={method: sft, name: sft-seed1}"])
