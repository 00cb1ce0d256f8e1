"""Knowledge probes: the same items in every language (facts, x_geo, x_csqa), option scoring, CLiKA's RA and
en-CO, and a knowledge task through a whole experiment on the tiny model."""
import json
import re
import os
import subprocess
import sys
from pathlib import Path

import pytest

from core.data import knowledge
from core.data.facts import LANGS, questions
from core.errors import UserError
from core.io import read_jsonl
from eval.knowledge import (accuracy_ratio, best_options, en_consistency, letter_picks, relative_accuracy,
                            score_choices)

REPO = Path(__file__).resolve().parents[1]


def test_facts_ask_the_same_question_with_the_same_options_in_every_language():
    en = {q.id: q for q in questions("en")}
    de = {q.id: q for q in questions("de")}
    assert len(en) > 600 and set(de) == set(en)
    france = en["facts:capital:FR"]
    assert france.options[france.label] == "Paris" and de["facts:capital:FR"].label == france.label
    assert de["facts:continent:DE"].options[de["facts:continent:DE"].label] == "Europa"
    assert questions("zh")[0].question.endswith("？")
    for lang in LANGS:
        qs = questions(lang)
        assert len(qs) > 400 and all(len(set(q.options)) == 4 and 0 <= q.label < 4 for q in qs)
    assert sum(q.label == 0 for q in en.values()) < 0.4 * len(en)   # the right answer is not always first


def test_clika_sets_align_item_ids_across_languages(data_dir):
    # x_csqa: 1,000 upstream, less the 49 whose gold text is also a distractor's in some language
    sizes = {"x_geo": (200, 4), "x_name": (180, 4), "x_csqa": (951, 5), "x_copa": (500, 2)}
    for name, (n, options) in sizes.items():
        en, de = (knowledge.load(name, lang, data_dir) for lang in ("en", "de"))
        assert {q.id for q in en} == {q.id for q in de} and len(en) == n, name
        assert all(0 <= q.label < len(q.options) == options for q in de), name
    # upstream folder DE/; the cause/effect frame in English
    copa = knowledge.load("x_copa", "de", data_dir)[0]
    assert (copa.question.endswith("What was the cause?")
            and copa.options[copa.label] == "Sie war zerbrechlich.")
    en, de = (knowledge.load("x_csqa", lang, data_dir) for lang in ("en", "de"))
    shared = knowledge.select_shared({"en": en, "de": de}, 30, 0, "x_csqa")
    assert [q.id for q in shared["en"]] == [q.id for q in shared["de"]] and len(shared["de"]) == 30
    with pytest.raises(UserError, match="data.test_size"):
        knowledge.select_shared({"en": en, "de": de}, 10**6, 0, "x_csqa")


def test_scoring_and_clika_measures():
    picks = best_options([[0.1, -1, -2, -3], [-1, 0.5, -2, -3], [0, -1, -2, -3]])
    s = score_choices(picks, [0, 0, 2], [4, 4, 4])
    assert s["per_item"]["correct"] == [1, 0, 0] and s["metrics"]["accuracy"] == pytest.approx(1 / 3)
    assert s["metrics"]["chance_corrected"] == pytest.approx((1 - 0.25 - 0.25 - 0.25) / 3 / 0.75)
    assert s["metrics"]["top_position_share"] == pytest.approx(2 / 3)
    assert (letter_picks(["B", " (c) no", "D. Paris", "E", "The answer"], [4, 4, 4, 4, 4])
            == [1, -1, 3, -1, -1])
    assert score_choices([1, -1], [1, 0], [4, 4])["metrics"]["unreadable_rate"] == 0.5
    assert relative_accuracy(0.3, 0.6, 0.25) == pytest.approx(0.05 / 0.35)
    assert accuracy_ratio(0.3, 0.6) == pytest.approx(0.5)
    assert s["metrics"]["chance"] == pytest.approx(0.25)
    assert en_consistency({"a": 1, "b": 1, "c": 0}, {"a": 1, "b": 0, "c": 1}) == pytest.approx(1 / 3)


def test_knowledge_task_in_an_experiment(tmp_path, tiny_model):
    env = dict(os.environ, WANDB_MODE="offline")
    cmd = [sys.executable, "cli.py", "run", "configs/experiments/smoke.yaml", f"output_dir={tmp_path}",
           "tasks={knowledge: {sets: [facts], langs: [en, de, zh]}}", "arms=[{method: base}]",
           # one rank: nothing trains, and knowledge on two evaluation ranks is tests/test_eval_ranks.py's
           "data.test_size=12", "deepspeed.num_gpus=1"]
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    run = tmp_path / "smoke"
    records = read_jsonl(run / "results.jsonl")
    assert {r["tgt"] for r in records} == {"en", "de", "zh"} and all(r["n_items"] == 12 for r in records)
    ids = [r["per_item"]["id"] for r in records]
    assert ids[0] == ids[1] == ids[2]   # the same questions in each language
    report = (run / "report.md").read_text()
    assert "Cross-lingual knowledge alignment (CLiKA)" in report and "en-CO if independent" in report
    for r in records:   # the intervals' right/wrong (output == reference) is the tables' (per_item.correct)
        per_item = r["per_item"]
        assert ([int(o == ref) for o, ref in zip(per_item["output"], per_item["reference"])]
                == per_item["correct"])
        assert r["signatures"]["knowledge"].startswith("loglik: log-probability per text-carrying token")
    assert json.loads((run / "data" / "manifest.json").read_text())["knowledge facts-zh"]["test_used"] == 12


def test_letter_protocol_prompts_with_options_and_reads_letters(tmp_path, tiny_model):
    env = dict(os.environ, WANDB_MODE="offline")
    cmd = [sys.executable, "cli.py", "run", "configs/experiments/smoke.yaml", f"output_dir={tmp_path}",
           "tasks={knowledge: {sets: [facts], langs: [en, de], scoring: letter}}", "arms=[{method: base}]",
           "data.test_size=4", "deepspeed.num_gpus=1"]
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    test = read_jsonl(tmp_path / "smoke" / "data" / "test.jsonl")
    assert all(r["prompt"].startswith("Answer the multiple-choice question") and "\nD. " in r["prompt"]
               for r in test)
    records = read_jsonl(tmp_path / "smoke" / "results.jsonl")
    assert all("unreadable_rate" in r["metrics"] for r in records)   # a random tiny model names no letter


def _record(arm: str, lang: str, correct: list[int]) -> dict:
    return {"experiment": "k", "arm": arm, "method": "base" if arm == "base" else "cpt", "task": "knowledge",
            "src": "facts", "tgt": lang, "metrics": {"accuracy": sum(correct) / len(correct)}, "cost": {},
            "per_item": {"id": [f"q{i}" for i in range(len(correct))], "correct": correct}}


def test_clika_tables_give_intervals_and_paired_differences_to_base():
    from eval.report_knowledge import clika_tables

    en_base, de_base = [1] * 20, [1] * 10 + [0] * 10
    en_cpt, de_cpt = [1] * 20, [1] * 20        # cpt answers every German item: +50 points, all of them paired
    tables = clika_tables([_record("base", "en", en_base), _record("base", "de", de_base),
                           _record("cpt", "en", en_cpt), _record("cpt", "de", de_cpt)])
    clika, diff = tables
    assert clika.header == ["arm", "lang", "acc %", "chance %", "RA", "acc_X / acc_en", "en-CO",
                            "en-CO if independent"]
    assert clika.rows[0] == ["base", "en", "100.0", "25.0", "", "", "", ""]
    base_de = clika.rows[1]
    # RA = (0.5 - 0.25) / (1 - 0.25) with its interval; the raw ratio beside it; en-CO and its chance baseline
    assert base_de[:4] == ["base", "de", "50.0", "25.0"]
    assert re.fullmatch(r"0\.33 \[0\.[0-2]\d–0\.[4-6]\d\]", base_de[4]) and base_de[5] == "0.50"
    assert re.fullmatch(r"0\.50 \[0\.[0-4]\d–0\.[6-9]\d\]", base_de[6]) and base_de[7] == "0.50"
    assert clika.rows[3][4:] == ["1.00 [1.00–1.00]", "1.00", "1.00 [1.00–1.00]", "1.00"]
    assert diff.title == "knowledge: facts, accuracy difference to base (points)"
    (cpt_row,) = diff.rows
    assert cpt_row[0] == "cpt" and cpt_row[1].startswith("+0.0") and not cpt_row[1].endswith("*")
    assert cpt_row[2].startswith("+50.0 [") and cpt_row[2].endswith("*")   # the interval excludes zero
