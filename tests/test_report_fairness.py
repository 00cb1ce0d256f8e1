"""The report's fair-comparison rules (docs: fairness.md 3, 4, 5): arms are paired only within an experiment,
against that experiment's own base; an unknown training cost is printed as unknown, never 0; upper bounds and
unknown costs are never on a Pareto front nor in break-even."""
import csv
import json

import pytest

from eval.records import deployable, training_cost_known
from eval.report import build_report
from eval.report_knowledge import difference_tables
from eval.report_plots import COST_AXES, arm_colors, front_points, render_cost_plot
from eval.report_stats import break_even
from tests.test_report import SFT_COST, ZERO_COST, record

UNKNOWN_COST = {k: None for k in ("train_examples", "train_tokens", "train_flops", "train_wall_s",
                                  "train_device_s", "train_peak_mem_mb")}


def experiment(name, budget, base_s, pretty_s, sft_s, lora_s):
    """A sweep point: base, sft, lora and PreTTY arms (a deployable prior, an oracle, an outside model of
    unknown training cost), each timed on this experiment's machine; the oracle and the outside model score
    best."""
    arms = [
        record("base", "base", 8.0, 35.0, 0.3, {**ZERO_COST, "eval_wall_s": base_s}, kept=0.2),
        record("sft", "sft", 18.0, 47.0, 0.0, {**SFT_COST, "train_device_s": sft_s}, kept=0.9),
        record("lora", "lora", 16.0, 45.0, 0.0, {**SFT_COST, "train_device_s": lora_s}, kept=0.8),
        record("pretty-frequent-k1", "pretty", 10.0, 38.0, 0.1, {**ZERO_COST, "eval_wall_s": pretty_s},
               prior={"source": "frequent", "k": 1}, steps=1, kept=0.4),
        record("pretty-oracle-k1", "pretty", 30.0, 60.0, 0.0, {**ZERO_COST, "eval_wall_s": pretty_s},
               prior={"source": "oracle", "k": 1}, steps=1, kept=1.0),
        record("pretty-task_model-k1", "pretty", 25.0, 55.0, 0.0,
               {**ZERO_COST, **UNKNOWN_COST, "eval_wall_s": 2 * pretty_s},
               prior={"source": "task_model", "k": 1}, steps=1, kept=0.95),
    ]
    return [{**r, "experiment": name, "budget": budget} for r in arms]


SWEEP = experiment("budget64", 64, base_s=60.0, pretty_s=70.0, sft_s=100.0, lora_s=80.0) + \
    experiment("budget1024", 1024, base_s=30.0, pretty_s=50.0, sft_s=1600.0, lora_s=1200.0)


@pytest.fixture
def sweep_dir(tmp_path):
    for name in ("budget64", "budget1024"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "results.jsonl").write_text(
            "".join(json.dumps(r) + "\n" for r in SWEEP if r["experiment"] == name))
    return tmp_path


def test_break_even_pairs_within_an_experiment_against_its_own_base():
    found = {(b.trained, b.pretty, round(b.items)) for b in break_even(SWEEP, many=True)}
    # budget64: 0.70 - 0.60 s/item extra; budget1024: 0.50 - 0.30 s/item, each against its own base
    assert found == {("budget64: sft", "budget64: pretty-frequent-k1", 1000),
                     ("budget64: lora", "budget64: pretty-frequent-k1", 800),
                     ("budget1024: sft", "budget1024: pretty-frequent-k1", 8000),
                     ("budget1024: lora", "budget1024: pretty-frequent-k1", 6000)}


def test_sweep_report_prints_unknown_costs_and_pairs_within_experiments(sweep_dir):
    paths, _ = build_report(sweep_dir)
    md = paths["md"].read_text()
    unknown = next(l for l in md.splitlines() if l.startswith("| budget64: pretty-task_model-k1 |"))
    assert "| unknown | unknown | unknown | unknown | unknown | unknown |" in unknown
    base = next(l for l in md.splitlines() if l.startswith("| budget64: base |"))
    assert "unknown" not in base and "| 0 | 0 | 0 |" in base  # a known zero stays zero
    assert "Training cost unknown" in md

    break_even_rows = [l for l in md.split("## Break-even")[1].splitlines() if l.startswith("| budget")]
    assert len(break_even_rows) == 4
    for line in break_even_rows:
        trained, pretty = line.split(" | ")[:2]
        assert trained.strip("| ").split(":")[0] == pretty.split(":")[0]
        assert "oracle" not in pretty and "task_model" not in pretty

    rows = list(csv.DictReader(paths["csv"].open()))
    task_model = [r for r in rows if r["arm"] == "pretty-task_model-k1"]
    assert len(task_model) == 2
    assert all(r["train_cost_known"] == "False" and r["train_flops"] == "" for r in task_model)
    assert {r["train_cost_known"] for r in rows if r["arm"] != "pretty-task_model-k1"} == {"True"}
    assert "quality_vs_budget" in paths


def test_pareto_front_holds_no_upper_bound_and_no_unknown_cost():
    rows = [r for r in SWEEP if r["experiment"] == "budget64"]
    expected = {"quality_vs_cost": ["pretty-frequent-k1", "sft"],
                "quality_vs_examples": ["pretty-frequent-k1", "sft"],
                "quality_vs_device_hours": ["pretty-frequent-k1", "lora", "sft"]}  # lora: fewer device-s
    for stem, arms in expected.items():
        # the oracle (best and free) and the outside model (better still, cost unknown) would dominate it
        assert [r["arm"] for r in front_points(rows, COST_AXES[stem][1])] == arms, stem
    steps_front = [r["arm"] for r in front_points(rows, COST_AXES["quality_vs_extra_steps"][1])]
    assert "pretty-oracle-k1" not in steps_front and steps_front[0] == "sft"


def test_cost_plot_draws_unknown_and_upper_bounds(tmp_path):
    rows = [r for r in SWEEP if r["experiment"] == "budget64"]
    png = render_cost_plot(rows, "quality_vs_cost")
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    (tmp_path / "plot.png").write_bytes(png)


def _knowledge(experiment, arm, lang, correct):
    return {"experiment": experiment, "arm": arm, "method": "base" if arm == "base" else "cpt",
            "task": "knowledge", "src": "facts", "tgt": lang, "cost": {},
            "metrics": {"accuracy": sum(correct) / len(correct)},
            "per_item": {"id": [f"q{i}" for i in range(len(correct))], "correct": correct}}


def test_knowledge_differences_are_to_each_experiments_own_base():
    records = [_knowledge("budget64", "base", "de", [1] * 10 + [0] * 10),
               _knowledge("budget64", "cpt", "de", [1] * 15 + [0] * 5),
               _knowledge("budget1024", "base", "de", [1] * 5 + [0] * 15),
               _knowledge("budget1024", "cpt", "de", [1] * 20)]
    tables = {t.title: t.rows for t in difference_tables(records)}   # two experiments: labels name theirs
    assert tables.keys() == {"knowledge: facts, accuracy difference to budget64: base (points)",
                             "knowledge: facts, accuracy difference to budget1024: base (points)"}
    (small,) = tables["knowledge: facts, accuracy difference to budget64: base (points)"]
    (large,) = tables["knowledge: facts, accuracy difference to budget1024: base (points)"]
    assert small[0] == "budget64: cpt" and small[1].startswith("+25.0 [")
    assert large[0] == "budget1024: cpt" and large[1].startswith("+75.0 [")


def test_record_accessors():
    assert training_cost_known({"arm": "sft", "cost": SFT_COST}) and training_cost_known({"arm": "x"})
    assert not training_cost_known({"arm": "x", "cost": UNKNOWN_COST})
    assert deployable({"arm": "base"}) and deployable({"arm": "p", "prior": {"source": "sft"}})
    assert not deployable({"arm": "p", "prior": {"source": "oracle"}})
    assert not deployable({"arm": "p", "prior": {"source": "sft", "deployable": False}})


def test_budget_plot_gives_every_arm_its_own_colour():
    arms = ["base", "sft", "lora", "lora-r64", "pretty-frequent-k1", "pretty-sft-k1", "pretty-oracle-k1"]
    colors = arm_colors(arms)
    assert len(set(colors.values())) == len(arms)
    assert len(set(arm_colors([f"pretty-{i}" for i in range(14)]).values())) == 14
