"""CLiKA's conductivity: the fictional-facts protocol (full and reduced), the gate, and a probe fine-tuned
under DeepSpeed through a whole experiment on the tiny model."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from core.config import load_config
from core.data import fictional
from core.errors import UserError
from core.io import read_jsonl
from eval.conductivity import answered, score_conductivity

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture()
def clika(data_dir):
    if not (data_dir / "clika" / "fictional").is_dir():
        pytest.skip("no clika/fictional in the data directory")
    return data_dir


def test_full_protocol_is_clikas_training_file(clika):
    rows, items, manifest = fictional.load(clika, "de", None, None, 0)
    # English QA for all 400 places, German QA for the 200 type-0 places, 420 names translated, ten wordings
    # each
    assert manifest["train_rows"] == {"en": 4000, "x": 2000, "translation": 4200}
    # less the German questions with two right answers: Wirbeltal and Kristalliner Hafen each name a type-0
    # and a type-1 place, Leuchtende Lagune and Eklipse-Ödland two type-1 places, each pair on two continents
    assert manifest["dropped_ambiguous"] == {"x_type0": 2, "x_type1": 6}
    assert manifest["test_items"] == {"en_type0": 200, "en_type1": 200, "x_type0": 198, "x_type1": 194,
                                      "translation": 420}


def test_reduced_protocol_keeps_type_1_facts_out_of_the_target_language(clika):
    rows, items, manifest = fictional.load(clika, "de", 40, 1, 0)
    assert manifest["train_rows"]["en"] == 40 and manifest["train_rows"]["x"] == 20
    assert all(manifest["test_items"][s] == 20 for s in ("en_type0", "en_type1", "x_type0", "x_type1"))
    places = {p.en: p for p in fictional.choose(fictional.places(clika / "clika" / "fictional", "de"), 40, 0)}
    x_facts = {r["fact"].split(":", 1)[1] for r in rows if r["fact"].startswith("x:")}
    assert x_facts and all(places[name].type == 0 for name in x_facts)
    # a type-1 question asks in German about a place whose German name appears in training only as a
    # translation
    x1 = next(i for i in items if i.subset == "x_type1")
    place = next(p for p in places.values() if p.x in x1.question)
    mentions = [r for r in rows if place.x in r["instruction"] + r["input"]]
    assert mentions and all(r["fact"].startswith("translation:") for r in mentions)
    assert x1.expected == place.continent_x
    with pytest.raises(UserError, match="places: 41 must be even"):
        fictional.load(clika, "de", 41, 1, 0)


def test_a_malformed_training_line_is_named(clika, tmp_path):
    root = tmp_path / "clika" / "fictional"
    shutil.copytree(clika / "clika" / "fictional", root)
    with open(root / "train" / "DE.json", "a", encoding="utf-8") as f:
        f.write('{"prompt": "Where is Nowhere?", "answer": "Nowhere."}\n')
    with pytest.raises(UserError, match=r"DE.json:10201: expected prompt, input, answer"):
        fictional.load(tmp_path, "de", 4, 1, 0)


def test_gate_and_xrr():
    items = [{"id": s, "subset": s, "tgt": "Mythosien"}
             for s in ("translation", "en_type0", "en_type1", "x_type0")]
    items += [{"id": "a", "subset": "x_type1", "tgt": "Mythosien"},
              {"id": "b", "subset": "x_type1", "tgt": "Eklipsos"}]
    outputs = ["Mythosien", "... the continent of mythosien.", "Mythosien", "auf dem Kontinent Mythosien.",
               "Mythosien", "Mythosien"]
    s = score_conductivity(outputs, items, gate=0.9)
    assert (s["metrics"]["xrr"] == 0.5 and s["metrics"]["gate_passed"] == 1.0
            and s["per_item"]["correct"] == [1, 0])
    # every subset's answers are kept, for reading what the gate saw
    assert s["subsets"]["en_type0"] == {"n": 1, "accuracy": 1.0, "correct": [1], "id": ["en_type0"],
                                        "output": ["... the continent of mythosien."]}
    outputs[1] = "Eklipsos"
    failed = score_conductivity(outputs, items, gate=0.9)["metrics"]
    assert failed["gate_passed"] == 0.0 and failed["en_type0_accuracy"] == 0.0 and failed["gate_min"] == 0.0
    assert answered("It lies in ÄTHERIUM.", "Ätherium") and not answered("", "Ätherium")


def test_config_names_the_wrong_start_arm_or_language(tmp_path):
    base = REPO / "configs" / "experiments" / "smoke.yaml"
    with pytest.raises(UserError, match="from_arms: 'lora' must name a base, sft, cpt or mixed arm"):
        load_config(base, ["tasks.conductivity={langs: [de], from_arms: [lora]}"])
    with pytest.raises(UserError, match=r"tasks.conductivity.langs: .*no CLiKA fictional data for \['es'\]"):
        load_config(base, ["tasks.conductivity={langs: [es]}"])


def test_conductivity_probe_through_an_experiment(tmp_path, tiny_model, clika):
    env = dict(os.environ, WANDB_MODE="offline", YARN_DATA_DIR=str(clika))
    cmd = [sys.executable, "cli.py", "run", "configs/experiments/smoke.yaml", f"output_dir={tmp_path}",
           "tasks={conductivity: {langs: [de], places: 4, paraphrases: 1, epochs: 1, batch_size: 4, "
           "learning_rate: 1.0e-3, max_new_tokens: 8}}", "arms=[{method: base}]", "deepspeed.num_gpus=1"]
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    run = tmp_path / "smoke"
    probe = json.loads((run / "checkpoints" / "cd-de-base" / "train.json").read_text())
    assert (probe["probe_of"] == "base"
            and probe["cost"]["train_examples"] == len(read_jsonl(run / "data" / "fictional-de.jsonl")))
    (record,) = read_jsonl(run / "results.jsonl")
    # the 2 type-1 places
    assert record["task"] == "conductivity" and record["tgt"] == "de" and record["n_items"] == 2
    assert set(record["probe"]["subsets"]) == {"translation", "en_type0", "en_type1", "x_type0", "x_type1"}
    assert record["weights"]["path"].endswith("cd-de-base/model") and record["cost"]["train_examples"] == 0
    assert {"xrr", "gate_passed", "x_type0_accuracy"} <= set(record["metrics"])
    report = (run / "report.md").read_text()
    assert "conductivity: fictional → German" in report and ("NOT met" in report or "| met |" in report)
