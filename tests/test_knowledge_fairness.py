"""Knowledge metrics that must move when the model does (fairness rule 7) and scoring that treats every
language alike (rule 8): RA normalised by chance with a chance baseline and a flag, option scores that ignore
the options' common prefix and bare space pieces, x_csqa items whose gold text is a distractor's dropped and
scored the same way by tables and intervals, and a dev split beside the test items."""
import math
import re

import pytest
import torch

from core.data import knowledge
from core.data.knowledge import Question, select_shared, select_shared_splits
from eval.knowledge import (answer_text, chance_p_value, independent_consistency, option_scores,
                            relative_accuracy, scored_from)


def _record(arm: str, lang: str, correct: list[int], src: str = "facts", **metrics) -> dict:
    return {"experiment": "k", "arm": arm, "method": "base" if arm == "base" else "cpt", "task": "knowledge",
            "src": src, "tgt": lang, "metrics": {"accuracy": sum(correct) / len(correct), **metrics},
            "cost": {}, "per_item": {"id": [f"q{i}" for i in range(len(correct))], "correct": correct}}


# ---------------------------------------------------------------- item 3: RA by chance, baseline, flag

def test_ra_of_a_model_at_chance_is_not_one_and_its_english_is_flagged():
    from eval.report_knowledge import clika_tables

    at_chance_en, at_chance_de = [1, 0, 0, 0] * 5, [0, 0, 1, 0] * 5    # 25% on 4 options, in both languages
    guessing_en = [1, 0, 0] * 6 + [1, 0]                               # 7 of 20: above 25%, not significantly
    good_en, good_de = [1] * 17 + [0] * 3, [1] * 11 + [0] * 9
    records = [_record("base", "en", at_chance_en), _record("base", "de", at_chance_de),
               _record("guess", "en", guessing_en), _record("guess", "de", at_chance_de),
               _record("good", "en", good_en), _record("good", "de", good_de)]
    clika = clika_tables(records)[0]
    rows = {(r[0], r[1]): r for r in clika.rows}
    # a raw ratio would read 1.00 here; the chance-normalised RA has no English above chance to be relative to
    assert (rows["base", "en"][2] == "25.0†" and rows["base", "de"][4] == "n/a†"
            and rows["base", "de"][5] == "1.00")
    # resamples hit chance
    assert rows["guess", "en"][2] == "35.0†" and rows["guess", "de"][4].endswith("–∞]†")
    assert rows["good", "en"][2] == "85.0"                                                # p < 0.05: no flag
    assert re.fullmatch(r"0\.50 \[0\.\d\d–[01]\.\d\d\]", rows["good", "de"][4])          # (.55-.25)/(.85-.25)
    assert rows["good", "de"][7] == f"{independent_consistency(0.85, 0.55):.2f}"
    assert "†: English accuracy not above chance at 95%" in clika.note and "ab / (a + b − ab)" in clika.note


def test_chance_comes_from_the_record_or_the_set():
    from eval.report_knowledge import clika_tables

    csqa = clika_tables([_record("base", "en", [1] * 9 + [0], "x_csqa", chance=0.2),
                         _record("base", "de", [1] * 5 + [0] * 5, "x_csqa", chance=0.2)])[0]
    assert csqa.rows[1][3] == "20.0" and csqa.rows[1][4].startswith("0.43 [")   # (.5 - .2) / (.9 - .2)
    copa = clika_tables([_record("base", "en", [1] * 9 + [0], "x_copa"),        # an older record: no chance
                         _record("base", "de", [1] * 5 + [0] * 5, "x_copa")])[0]
    assert copa.rows[0][3] == "50.0" and copa.rows[1][4].startswith("0.00 [")


def test_chance_measures():
    assert relative_accuracy(0.25, 0.25, 0.25) is None and relative_accuracy(0.2, 0.85, 0.25) == 0.0
    assert relative_accuracy(0.55, 0.85, 0.25) == pytest.approx(0.5)
    c = 0.2
    assert independent_consistency(c, c) == pytest.approx(c / (2 - c))
    assert independent_consistency(0.5, 0.5) == pytest.approx(1 / 3)
    exact = sum(math.comb(20, i) * 0.25 ** i * 0.75 ** (20 - i) for i in range(7, 21))
    assert chance_p_value(7, 20, 0.25) == pytest.approx(exact) and 0.2 < exact < 0.25
    assert chance_p_value(0, 20, 0.25) == 1.0 and chance_p_value(600, 1000, 0.25) < 1e-100


# ---------------------------------------------------------------- item 4: the options' common prefix

class _Tok:
    """Ids by lookup: the prompt "Q" is [0]; an option's text names its ids; piece 1 is a bare space."""
    pieces = {0: "Q", 1: " ", 2: "ab", 3: "c", 4: "de"}
    pad_token_id = 0

    def __init__(self, options: dict[str, list[int]]):
        self.options = options

    def __call__(self, texts, add_special_tokens=True):
        ids = [[0] if t == "Q" else self.options[t] for t in texts]
        return type("Encoded", (), {"input_ids": ids})()

    def decode(self, ids):
        return "".join(self.pieces[i] for i in ids)


class _Unigram(torch.nn.Module):
    """The same next-token distribution at every position: a token's log-probability is fixed."""

    def __init__(self, probs: list[float]):
        super().__init__()
        self.logits = torch.nn.Parameter(torch.tensor(probs).log(), requires_grad=False)

    def forward(self, input_ids, attention_mask=None):
        logits = self.logits.expand(*input_ids.shape, -1)
        return type("Output", (), {"logits": logits})()


LP = [math.log(p) for p in (0.05, 0.4, 0.25, 0.2, 0.1)]


def test_option_scores_skip_the_common_prefix_and_bare_space_pieces():
    options = {"shared_a": [1, 2, 3], "shared_b": [1, 4],     # both start with the bare space: it drops out
               "mixed_a": [1, 2], "mixed_b": [4, 3],           # only one does: it joins the next piece
               "same": [2], "same_too": [2], "short": [2], "long": [2, 3], "twin": [2, 3]}
    model, tok = _Unigram([0.05, 0.4, 0.25, 0.2, 0.1]), _Tok(options)
    items = [["shared_a", "shared_b"], ["mixed_a", "mixed_b"], ["same", "same_too"], ["short", "long"],
             ["long", "twin"]]
    scores = option_scores(model, tok, ["Q"] * len(items), items, batch_size=3)
    expected = [[(LP[2] + LP[3]) / 2, LP[4]], [LP[1] + LP[2], (LP[4] + LP[3]) / 2], [LP[2], LP[2]],
                [LP[2], (LP[2] + LP[3]) / 2], [LP[3], LP[3]]]
    for got, want in zip(scores, expected):
        assert got == pytest.approx(want, abs=1e-6)
    chars = option_scores(model, tok, ["Q"] * 2, items[:2], normalise="chars")
    assert chars[0] == pytest.approx([(LP[2] + LP[3]) / 3, LP[4] / 2], abs=1e-6)   # "abc", "de"
    assert chars[1] == pytest.approx([(LP[1] + LP[2]) / 2, (LP[4] + LP[3]) / 3], abs=1e-6)
    assert (scored_from([[5, 1], [5, 1]]) == 1 and scored_from([[5], [5, 2]]) == 0
            and scored_from([[5, 1], [6]]) == 0)


def test_gemma_chinese_options_score_alike_with_and_without_a_shared_bare_space():
    from transformers import AutoTokenizer

    from core.models import resolve

    tok = AutoTokenizer.from_pretrained(resolve("gemma-3-270m"))
    shared = ["博物馆", "建筑物", "船坞", "音乐厅", "场馆"]   # Gemma: ['▁', '博物馆'], ['▁', '船', '坞'] ...
    assert all(tok.convert_ids_to_tokens(tok(" " + o, add_special_tokens=False).input_ids)[0] == "▁"
               for o in shared)
    probs = torch.softmax(torch.randn(len(tok), generator=torch.Generator().manual_seed(0)), -1)
    model = _Unigram(probs.tolist())
    prompt = ["Question: 你会在哪里看到展品？\nAnswer:"]
    with_space = option_scores(model, tok, prompt, [[" " + o for o in shared]], batch_size=2)[0]
    without = option_scores(model, tok, prompt, [shared], batch_size=2)[0]
    assert with_space == pytest.approx(without, abs=1e-5)
    # where only some options start with the bare space, it joins the next piece and does not count
    mixed = option_scores(model, tok, prompt, [[" 北京", " 船坞"]])[0]
    lp = probs.log()
    space, boat, dock = (tok(" 船坞", add_special_tokens=False).input_ids)
    assert tok.convert_ids_to_tokens([space]) == ["▁"]
    assert mixed[1] == pytest.approx(((lp[space] + lp[boat] + lp[dock]) / 2).item(), abs=1e-5)


# ---------------------------------------------------------------- item 5: gold text equal to a distractor's

def test_x_csqa_drops_items_whose_gold_text_is_a_distractors_in_any_language(data_dir):
    en, de, zh = (knowledge.load("x_csqa", lang, data_dir) for lang in ("en", "de", "zh"))
    assert {q.id for q in en} == {q.id for q in de} == {q.id for q in zh} and len(en) == 951
    assert not any(knowledge.gold_is_ambiguous(q) for q in en + de + zh)
    ids = {q.id for q in en}
    assert "x_csqa:fb713a38f6059c4b" not in ids   # en: plate / market / freezer / store / plate
    assert "x_csqa:b074057439420033" not in ids   # de only: ... Stadt ... Stadt; dropped in English as well


def test_intervals_count_right_what_the_tables_count_right():
    from eval.report_stats import intervals

    options = ["Paris", "Paris", "Lyon"]   # the gold (0) reads the same as a distractor (1)
    picks = [1] * 10 + [0] * 10
    correct = [int(p == 0) for p in picks]
    rows = [{"experiment": "k", "arm": arm, "task": "knowledge",
             "per_item": {"correct": correct, "output": [answer_text(options, p) for p in picks],
                          "reference": [answer_text(options, 0)] * len(picks)}} for arm in ("sft", "base")]
    (sft, base) = intervals(rows, "knowledge")
    assert sft.mean == pytest.approx(sum(correct) / len(correct), abs=0.05) and sft.mean < 0.75
    assert answer_text(options, 1) == "B. Paris" and answer_text(options, -1) == "(no option)"


# ---------------------------------------------------------------- dev split

def _questions(n: int, lang: str, skip: set[int] = frozenset()) -> list[Question]:
    return [Question(f"s:{i}", f"{lang} {i}?", ("a", "b"), 0) for i in range(n) if i not in skip]


def test_dev_split_is_shared_disjoint_and_leaves_the_test_items_alone():
    by_lang = {"en": _questions(100, "en"), "de": _questions(100, "de", {3, 4}),
               "zh": _questions(100, "zh", {7})}
    test, dev = select_shared_splits(by_lang, 30, 5, "s")
    assert test == select_shared(by_lang, 30, 5, "s")
    ids = [[q.id for q in qs] for qs in dev.values()]
    assert ids[0] == ids[1] == ids[2] and len(ids[0]) == 30
    assert not set(ids[0]) & {q.id for q in test["en"]} and not set(ids[0]) & {"s:3", "s:4", "s:7"}
    assert select_shared_splits(by_lang, 30, 5, "s")[1] == dev            # seeded
    assert len(select_shared_splits(by_lang, 30, 5, "s", dev_n=10)[1]["de"]) == 10
    test, dev = select_shared_splits(by_lang, 80, 5, "s")
    assert len(test["en"]) == 80 and len(dev["en"]) == 17                 # what remains of the 97 shared


def test_normalise_is_a_knowledge_option_left_out_of_the_hash_when_unset():
    from tasks.knowledge import KnowledgeTask

    unset = KnowledgeTask(sets=["facts"], langs=["en", "de"])
    assert "normalise" not in unset.model_dump(exclude_none=True)
    assert KnowledgeTask(sets=["facts"], langs=["en", "de"], normalise="chars").normalise == "chars"
