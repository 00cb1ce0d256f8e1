"""The budget's uses without training (issue 18): in-context demonstrations (align/demos.py), a PreTTY prior
after them, nudging (align/nudge.py, its decoding tested in test_nudge.py), decoding options and the
degeneration rate, their configs, records and costs."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from align.demos import choose_shots, few_shot_prompts
from core.config import load_config
from core.errors import UserError
from core.prompts import translation_completion, translation_prompt
from eval.degeneration import degenerate, loops

REPO = Path(__file__).resolve().parents[1]


def _row(i: int, src: str, tgt: str = "") -> dict:
    tgt = tgt or f"T {src}"
    return {"id": f"r{i}", "src": src, "tgt": tgt, "prompt": translation_prompt(src, "en", "de"),
            "completion": translation_completion(tgt), "task": "mt", "direction": "en-de"}


POOL = [_row(i, s) for i, s in enumerate([
    "In the beginning God created the heaven and the earth.",
    "And the earth was without form, and void.",
    "And God said, Let there be light: and there was light.",
    "And God saw the light, that it was good.",
    "The cat sat on the mat.",
    "And God called the light Day, and the darkness he called Night.",
])]


def test_demonstrations_come_from_the_budget_and_never_show_the_test_item():
    # the test item is in the pool twice over: under its own id, and another row with its source text
    item = dict(POOL[2], id="t0")
    pool = POOL + [dict(POOL[2], id="dup"), dict(POOL[4], id="t0")]
    for select in ("random", "similar"):
        (shots,) = choose_shots(pool, [item], 5, select, seed=0, lang="en")
        assert len(shots) == 5
        assert all(s in pool for s in shots)
        assert all(s["id"] != "t0" and s["src"] != item["src"] for s in shots), select


def test_similar_is_deterministic_and_puts_the_most_similar_last():
    item = _row(99, "And God said, Let there be light.")
    first = choose_shots(POOL, [item], 3, "similar", seed=0, lang="en")
    assert first == choose_shots(POOL, [item], 3, "similar", seed=1, lang="en")   # no randomness at all
    assert first[0][-1]["id"] == "r2"   # "Let there be light: and there was light." is nearest
    assert "r4" not in [s["id"] for s in first[0]]   # the cat shares no word


def test_random_is_a_seeded_draw_per_item():
    a, b = _row(90, "One sentence."), _row(91, "Another sentence.")
    alone = choose_shots(POOL, [a], 3, "random", seed=0, lang="en")[0]
    together = choose_shots(POOL, [b, a], 3, "random", seed=0, lang="en")[1]
    assert alone == together   # an item's shots do not depend on the other items evaluated
    draws = {tuple(s["id"] for s in choose_shots(POOL, [a], 3, "random", seed=s, lang="en")[0])
             for s in range(6)}
    assert len(draws) > 1   # the seed matters


def test_the_prompt_shows_the_instruction_once_and_the_bound_drops_whole_shots(gemma):
    from tasks.mt import Translation

    task = Translation.__new__(Translation)
    item = _row(99, "And God said, Let there be light.")
    shots = POOL[:4]
    full = few_shot_prompts(task, gemma, [item], [shots], max_tokens=10_000)
    prompt = full.prompts[0]
    assert prompt.count("Translate this from English into German:") == 1
    assert prompt.startswith("Translate this from English into German:\nEnglish: In the beginning")
    assert prompt.endswith("English: And God said, Let there be light.\nGerman:")
    assert all(f"English: {s['src']}\nGerman: {s['tgt']}\n" in prompt for s in shots)
    assert full.shots_used == [4] and full.dropped == 0
    zero = len(gemma(item["prompt"]).input_ids)
    assert full.extra_tokens == [len(gemma(prompt).input_ids) - zero] and full.extra_tokens[0] > 0

    bound = len(gemma(prompt).input_ids) - 5   # one shot too many
    cut = few_shot_prompts(task, gemma, [item], [shots], max_tokens=bound)
    assert cut.shots_used == [3] and cut.dropped == 1
    assert POOL[0]["src"] not in cut.prompts[0]             # the least similar (first) went
    assert all(f"English: {s['src']}\nGerman: {s['tgt']}\n" in cut.prompts[0] for s in shots[1:])  # whole
    none = few_shot_prompts(task, gemma, [item], [shots], max_tokens=1)
    assert none.shots_used == [0] and none.dropped == 4 and none.prompts == [item["prompt"]]


@pytest.mark.parametrize("text, lang, looping", [
    ("Das ist ein Haus.", "de", False),
    ("- - - - -", "ru", True),                                   # one word, three times in a row
    ("und dann und dann und dann", "de", True),                  # a bigram
    ("a b c d a b c d a b c d", "en", True),                     # n = 4
    ("a b c d e a b c d e a b c d e", "en", False),              # n = 5 is not counted
    ("the the cat", "en", False),                                # twice is not a loop
    ("我们我们我们", "zh", True), ("我们我们我们", "de", False),  # characters only where words have no spaces
    ("2000年价格为1000元", "zh", False), ("见www.example.com", "zh", False),   # a number is one unit
])
def test_loops(text, lang, looping):
    assert loops(text, lang) is looping


def test_an_output_cut_by_the_token_limit_is_degenerate():
    assert degenerate("Das ist ein", True, "de") and not degenerate("Das ist ein Haus.", False, "de")
    # POS tags in a list repeat by design: there only the limit counts
    assert not degenerate("NOUN NOUN NOUN", False, None) and degenerate("NOUN NOUN NOUN", True, None)


def test_similar_without_any_shared_word_is_not_the_budgets_first_rows():
    """Ties (no word in common) are broken in a seeded order of each item's own, deterministically."""
    items = [_row(90 + i, f"Qwxz{i} vbnm{i}.") for i in range(6)]
    first = choose_shots(POOL, items, 2, "similar", seed=0, lang="en")
    assert first == choose_shots(POOL, items, 2, "similar", seed=0, lang="en")
    assert len({tuple(s["id"] for s in shots) for shots in first}) > 1


def test_penalties_act_on_the_answer_alone():
    """A repetition penalty or n-gram block sees the generated tokens only: demonstrations or a prior in the
    input do not penalise an arm more than a zero-shot one."""
    import torch

    from core.decoding import _answer_processors

    passed, processors = _answer_processors({"num_beams": 2, "repetition_penalty": 2.0,
                                             "no_repeat_ngram_size": 1}, width=3)
    assert passed == {"num_beams": 2}
    scores = torch.tensor([[1.0, 1.0, 1.0, 1.0, 1.0]])
    prompt_only = processors(torch.tensor([[1, 2, 3]]), scores.clone())
    assert torch.equal(prompt_only, scores)   # tokens 1-3 are the prompt's: untouched
    answered = processors(torch.tensor([[1, 2, 3, 4]]), scores.clone())
    assert answered[0, 4] == float("-inf") and torch.equal(answered[0, :4], scores[0, :4])


# ---------------------------------------------------------------- config

def _cfg(tmp_path: Path, arms: str) -> Path:
    text = (REPO / "configs/experiments/smoke.yaml").read_text()
    head, _, tail = text.partition("arms:\n")
    tail = tail[tail.index("deepspeed:"):]
    path = tmp_path / "c.yaml"
    path.write_text(head + "arms:\n" + arms + tail)
    return path


SFT = "  - {method: sft, epochs: 1}\n  - {method: lora, epochs: 1}\n  - {method: cpt, langs: [de]}\n"


def test_arm_names_and_defaults(tmp_path):
    cfg = load_config(_cfg(tmp_path, SFT + "  - {method: icl}\n  - {method: icl, shots: 2, select: similar}\n"
                           "  - {method: icl, from_arm: sft}\n  - {method: nudge, threshold: 0.4}\n"
                           "  - {method: nudge, from_arm: lora, threshold: 1}\n"
                           "  - {method: nudge, threshold: 0.404}\n"
                           "  - {method: pretty, prior: frequent, k: 1, shots: 4}\n"))
    names = [a.name for a in cfg.arms[3:]]
    assert names == ["icl-random-4shot", "icl-similar-2shot", "sft-icl-random-4shot", "nudge-sft-t40",
                     "nudge-lora-t100", "nudge-sft-t40p4", "pretty-frequent-k1-random-4shot"]
    assert cfg.arms[6].from_arm == "sft"   # nudge defaults to the sft arm


@pytest.mark.parametrize("arms, extra, message", [
    ("  - {method: nudge, from_arm: cpt, threshold: 0.4}\n", "", "arms.3.from_arm: method nudge needs"),
    ("  - {method: icl, from_arm: nope}\n", "", "arms.3.from_arm: method icl needs"),
    ("  - {method: nudge, threshold: 1.5}\n", "", "arms.3.threshold"),
    ("  - {method: nudge, threshold: 0.4, from_arm: sft, task_model: x}\n", "", "give one model"),
    ("  - {method: pretty, prior: frequent, k: 1, select: similar}\n", "", "select: only used with shots"),
    ("  - {method: icl, shots: 0, select: similar}\n", "", "select: only used with shots"),
    ("  - {method: nudge, threshold: 0.4}\n", "eval:\n  repetition_penalty: 1.2\n", "nudge decodes greedily"),
    ("  - {method: icl, select: nearest}\n", "", "arms.3.select: Input should be 'random' or 'similar'"),
    ("  - {method: nudge, threshold: 0.4}\n", "eval:\n  num_beams: 4\n", "nudge decodes greedily"),
])
def test_bad_arms_are_config_errors_at_their_line(tmp_path, arms, extra, message):
    path = _cfg(tmp_path, SFT + arms)
    if extra:   # a second eval: block would be a duplicate key; merge into the one there
        text = path.read_text().replace("eval:\n", extra)
        path.write_text(text)
    with pytest.raises(UserError) as e:
        load_config(path)
    assert message in str(e.value), str(e.value)
    assert str(e.value).startswith(f"{path}:")


def test_new_fields_unset_keep_the_shipped_hashes():
    """Decoding options and demonstrations default to unset: no shipped config's hash moves (runs made before
    them are not redone). The demo's hash is pinned as it was before issue 18."""
    assert load_config(REPO / "configs/experiments/demo.yaml").hash() == "6885e90bcc3c8e8f"


# ---------------------------------------------------------------- records and costs, on the smoke run

ARMS = ("[{method: base}, {method: sft, epochs: 1, learning_rate: 1.0e-3, batch_size: 4, logging_steps: 2}, "
        "{method: lora, epochs: 1, learning_rate: 1.0e-2, batch_size: 4, logging_steps: 2, r: 4, alpha: 8}, "
        "{method: pretty, prior: sft, k: 1}, {method: pretty, prior: oracle, k: 1}, "
        "{method: pretty, prior: frequent, k: 1}, {method: icl, shots: 2}, {method: icl, shots: 2, "
        "select: similar, max_prompt_tokens: 200}, {method: pretty, prior: frequent, k: 1, shots: 2}, "
        "{method: nudge, threshold: 0.5}, {method: icl, from_arm: sft, shots: 1}]")


@pytest.fixture(scope="module")
def uses(smoke_run, tmp_path_factory):
    """The smoke run's checkpoints, evaluated with the budget's other uses (no training again)."""
    from eval.report import build_report
    from eval.run import Evaluator

    root = tmp_path_factory.mktemp("uses") / "smoke"
    shutil.copytree(smoke_run[0], root)
    # W&B off: an in-process W&B run starts a service that later DeepSpeed ranks of the suite would inherit
    # (a killed rank's run then stays "in use" for its resume, tests/test_pretrain.py)
    cfg = load_config(REPO / "configs/experiments/smoke.yaml", [f"arms={ARMS}", "wandb.mode=disabled"])
    records = {r["arm"]: r for r in Evaluator(cfg, root).run()}
    dev = {r["arm"]: r for r in Evaluator(cfg, root, "dev").run()}
    build_report(root)
    return root, records, dev, cfg


def test_icl_records_its_demonstrations_and_charges_their_prefill(uses):
    root, records, _, cfg = uses
    icl, bound = records["icl-random-2shot"], records["icl-similar-2shot"]
    for r in (icl, bound):
        assert r["method"] == "icl" and r["cost"]["train_flops"] == 0
        assert r["cost"]["train_examples"] == cfg.data.budget        # the budget's rows are the pool
        assert r["cost"]["extra_prompt_tokens_per_item"] > 0
    assert icl["icl"] == {"shots": 2, "select": "random", "max_prompt_tokens": 1024, "shots_used_mean": 2.0,
                          "dropped": 0, "from_arm": None}
    # 200 tokens do not hold two Bible verses, their translations and the item: whole shots were dropped
    assert bound["icl"]["dropped"] > 0 and bound["icl"]["shots_used_mean"] < 2
    # each item's shots are named: budget rows, never the item
    budget = {json.loads(line)["id"] for line in (root / "data/train.jsonl").read_text().splitlines()}
    for item_id, shown in zip(icl["per_item"]["id"], icl["per_item"]["shots"]):
        assert len(shown) == 2 and set(shown) <= budget and item_id not in shown
    assert bound["cost"]["extra_prompt_tokens_per_item"] < icl["cost"]["extra_prompt_tokens_per_item"]
    # zero-shot arms pay no prefill
    assert records["base"]["cost"]["extra_prompt_tokens_per_item"] == 0


def test_icl_on_a_trained_model_and_a_prior_after_demonstrations(uses):
    _, records, _, _ = uses
    on_sft, sft = records["sft-icl-random-1shot"], records["sft"]
    assert on_sft["weights"]["sha256"] == sft["weights"]["sha256"]          # the sft checkpoint, prompted
    assert on_sft["cost"]["train_flops"] == sft["cost"]["train_flops"] > 0   # and its training charged
    assert on_sft["cost"]["train_examples"] == sft["cost"]["train_examples"]  # the budget, counted once
    both, alone = records["pretty-frequent-k1-random-2shot"], records["pretty-frequent-k1"]
    assert both["prior"]["source"] == "frequent" and both["icl"]["shots"] == 2
    # the prior is the same (built from the zero-shot prompt); the answer follows the demonstrations
    assert [s["prior"] for s in both["samples"]] == [s["prior"] for s in alone["samples"]]
    assert both["cost"]["extra_prompt_tokens_per_item"] > 0


def test_nudge_records_what_the_aligned_model_supplied_and_charges_it(uses):
    _, records, _, _ = uses
    r, sft = records["nudge-sft-t50"], records["sft"]
    nudge = r["nudge"]
    assert nudge["threshold"] == 0.5 and nudge["from_arm"] == "sft"
    assert sum(r["per_item"]["nudged"]) == nudge["supplied"] == sum(nudge["histogram"])
    assert 0 < nudge["supplied"] <= nudge["tokens"]   # a random tiny model is unsure: it is nudged
    assert nudge["first"]["1"] <= nudge["first"]["2"] <= nudge["first"]["3"] <= nudge["supplied"]
    assert r["cost"]["train_flops"] == sft["cost"]["train_flops"]   # the aligned model's training
    # PreTTY's convention: one prefill per item it ran for, a step per distribution it computed
    assert r["cost"]["extra_model_calls_per_item"] == 1.0
    assert r["cost"]["extra_decode_steps_per_item"] >= nudge["supplied"] / r["n_items"]
    assert r["weights"]["aligned"]["sha256"] == sft["weights"]["sha256"]


def test_every_generated_record_has_a_degeneration_rate(uses):
    _, records, _, _ = uses
    for r in records.values():
        flags = r["per_item"]["degenerate"]
        assert len(flags) == r["n_items"]
        assert r["metrics"]["degenerate_rate"] == pytest.approx(sum(flags) / len(flags))


def test_the_report_shows_the_budget_uses(uses):
    root, records, dev, _ = uses
    md = (root / "report.md").read_text()
    assert "## Which use of the budget wins" in md
    assert "## Nudging: where the aligned model's tokens go" in md
    assert "## Loops: how much of the gap to SFT is degenerate outputs" in md and "shots used" in md
    assert "extra prompt tokens/item" in md and "degenerate %" in md
    assert (root / "quality_vs_shots.png").is_file()
    assert set(dev) == set(records)   # the dev split has every arm: the winners are chosen there


def test_decoding_options_reach_generate_and_the_record(uses, tmp_path):
    """eval.num_beams etc. are applied to every arm (here beam 2 + a 2-gram block) and recorded."""
    from eval.run import Evaluator

    root, records, _, _ = uses
    copy = tmp_path / "smoke"
    shutil.copytree(root, copy, ignore=shutil.ignore_patterns("results", "results.jsonl", "dev"))
    cfg = load_config(REPO / "configs/experiments/smoke.yaml",
                      ["eval.num_beams=2", "eval.no_repeat_ngram_size=2", "wandb.mode=disabled"])
    (beam,) = [r for r in Evaluator(cfg, copy).run(["base"])]
    assert beam["decoding"] == {"num_beams": 2, "no_repeat_ngram_size": 2}
    assert "decoding" not in records["base"]   # greedy: nothing recorded, as before
    assert beam["per_item"]["output"] != records["base"]["per_item"]["output"]
    json.dumps(beam)


def test_the_loop_split_adds_up_and_refuses_a_misleading_share():
    from eval.report_loops import _loop_rows

    refs = ["a", "b", "c", "d"]

    def rec(arm, scores, flags):
        return {"arm": arm, "task": "mt", "metrics": {"reference_degenerate_rate": 0.0},
                "per_item": {"reference": refs, "output": refs, "chrf": scores, "degenerate": flags}}

    sft = rec("sft", [50.0, 50.0, 50.0, 50.0], [False] * 4)
    looping = rec("base", [0.0, 50.0, 30.0, 50.0], [True, False, False, False])
    (row,) = _loop_rows([sft, looping], "mt", False)
    # gap 17.5 = 12.5 on the looped item + 5.0 on the others: 71% of the gap
    assert row == ["base", "25", "0", "17.50", "12.50", "5.00", "71%"]
    ahead = rec("x", [0.0, 80.0, 80.0, 80.0], [True, False, False, False])   # better than SFT elsewhere
    (row,) = _loop_rows([sft, ahead], "mt", False)
    assert row[-1] == "n/a"


def test_the_shipped_budget_use_configs_validate():
    """budget-uses (and its sweep over budgets 64 and 256) and the ablation's new arms, validated offline."""
    from core.sweep import expand, is_finished, load_sweep

    points = expand(load_sweep(REPO / "configs/sweeps/budget-uses.yaml"), "/nonexistent/runs")
    assert [cfg.data.budget for cfg, _ in points] == [64, 256]
    for cfg, _ in points:
        methods = {a.method for a in cfg.arms}
        assert {"icl", "nudge", "pretty", "sft", "lora"} <= methods
        assert not is_finished(cfg, "dev") and not is_finished(cfg)
    ablation = load_config(REPO / "configs/experiments/pretty-ablation.yaml")
    names = {a.name for a in ablation.arms}
    assert {"icl-random-1shot", "icl-similar-4shot", "pretty-frequent-k1-random-4shot", "nudge-sft-t30",
            "nudge-sft-t60"} <= names
