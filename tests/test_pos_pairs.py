"""POS answers as word/TAG pairs (the default format): parsing, scoring that follows the words, PreTTY priors
of k tags, and the earlier tag-list format kept as `format: list`."""
import pytest
import torch

from align import priors
from core.config import load_config
from core.data.ud import TaggedSentence, load_tagged
from core.ledger import Cost
from tasks.pos import PosTask
from tasks.pos import _rows as _pos_rows
from core.prompts import tagging_completion, tagging_prompt
from eval.pos import TagPairs, gold_of, parse_pairs, score_references, score_tagging
from tests.test_tasks import SMOKE

WORDS = ["The", "cat", "sat", "."]
TAGS = ["DET", "NOUN", "VERB", "PUNCT"]


def test_pairs_prompt_and_completion():
    assert tagging_prompt(WORDS).endswith("part-of-speech tag "
                                          "(ADJ ADP ADV AUX CCONJ DET INTJ NOUN NUM PART PRON PROPN PUNCT "
                                          "SCONJ SYM VERB X).\nWords: The | cat | sat | .\nTagged:")
    assert tagging_completion(WORDS, TAGS) == " The/DET cat/NOUN sat/VERB ./PUNCT"
    with pytest.raises(ValueError):   # a tag per word, or nothing
        tagging_completion(WORDS, TAGS[:3])


def test_parse_pairs_words_holding_slashes_and_spaces():
    assert parse_pairs(" The/DET cat/NOUN sat/VERB ./PUNCT") == list(zip(WORDS, TAGS))
    # the tag follows a token's last "/": UD words hold slashes ("and/or", "/", "//", "w/", dates)
    assert parse_pairs("and/or/CCONJ //PUNCT ///SYM w//ADP 01/24/2001/NUM") == [
        ("and/or", "CCONJ"), ("/", "PUNCT"), ("//", "SYM"), ("w/", "ADP"), ("01/24/2001", "NUM")]
    assert parse_pairs("kostet/VERB 25 000/NUM Euro/NOUN") == [("kostet", "VERB"), ("25 000", "NUM"),
                                                                ("Euro", "NOUN")]
    # read as tags are read in the list format: case, punctuation stuck to the tag; text after the last pair
    assert parse_pairs('the/det cat/"NOUN". and so on') == [("the", "DET"), ("cat", "NOUN")]
    assert parse_pairs("DET NOUN VERB") == [] and parse_pairs("") == []


def test_every_ud_word_survives_its_pair(data_dir):
    splits = [("en", "train"), ("en", "dev"), ("fr", "test"), ("es", "test"), ("ja", "test")]
    sentences = [s for lang, split in splits for s in load_tagged(lang, split, data_dir)]
    assert (any("/" in w for s in sentences for w in s.words)
            and any(" " in w for s in sentences for w in s.words))
    assert all(gold_of(tagging_completion(s.words, s.tags)) == (list(s.words), list(s.tags))
               for s in sentences)


def test_strict_score_follows_the_words():
    outputs = [" The/DET cat/NOUN sat/VERB ./PUNCT",          # 4 of 4
               " The/DET cat/NOUN sat/NOUN ./PUNCT",          # a wrong tag: 3
               " The/DET sat/VERB ./PUNCT",                   # a missing pair shifts the rest: 1 strict,
                                                              # 3 aligned
               " The/DET The/DET cat/NOUN sat/VERB ./PUNCT",  # an extra pair: 1 strict, 4 aligned
               " The/DET dog/NOUN sat/VERB ./PUNCT",          # a wrong word: its tag does not count, 3
               " The/DET The/NOUN The/VERB The/PUNCT",        # every tag at one word: 1, and nothing more
               " DET NOUN VERB PUNCT"]                        # no pair: unparseable, 0
    result = score_tagging(outputs, [TAGS] * len(outputs), [WORDS] * len(outputs))
    strict = [4, 3, 1, 1, 3, 1, 0]
    assert result["per_item"]["accuracy"] == [s / 4 for s in strict]
    assert result["per_item"]["invalid"] == [False, False, True, True, True, True, True]
    m = result["metrics"]
    assert m["upos_accuracy"] == pytest.approx(sum(strict) / 28)
    assert m["aligned_accuracy"] == pytest.approx((4 + 3 + 3 + 4 + 3 + 1 + 0) / 28)
    assert m["word_match_rate"] == pytest.approx((4 + 4 + 1 + 1 + 3 + 1 + 0) / 28)
    assert m["misaligned_rate"] == pytest.approx(5 / 7) and m["unparseable_rate"] == pytest.approx(1 / 7)
    # tags by position, words ignored (a diagnostic, as in the list format): the wrong or repeated words count
    assert m["position_accuracy"] == pytest.approx((4 + 3 + 1 + 1 + 4 + 4 + 0) / 28)


def test_the_references_tell_the_format():
    outputs = [" The/DET cat/NOUN sat/VERB ./PUNCT", " The/DET cat/VERB"]
    pairs = score_references(outputs, [tagging_completion(WORDS, TAGS).strip(), "The/DET cat/NOUN"])
    assert pairs == score_tagging(outputs, [TAGS, ["DET", "NOUN"]], [WORDS, ["The", "cat"]])
    assert pairs["metrics"]["upos_accuracy"] == pytest.approx(5 / 6)
    listed = score_references([" DET NOUN VERB PUNCT"], ["DET NOUN VERB PUNCT"])   # format list, old records
    assert listed["metrics"]["upos_accuracy"] == 1.0 and "aligned_accuracy" not in listed["metrics"]


def test_tag_pairs_end_with_their_tags(gemma):
    ids = gemma(" The/DET cat/NOUN sat/VERB and/or/CCONJ", add_special_tokens=False).input_ids
    counter = TagPairs(gemma)
    for j in range(1, len(ids) + 1):
        counter.add(ids[:j])
    assert [gemma.decode(ids[:e]) for e in counter.ends] == [
        " The/DET", " The/DET cat/NOUN", " The/DET cat/NOUN sat/VERB",
        " The/DET cat/NOUN sat/VERB and/or/CCONJ"]
    assert gemma.convert_ids_to_tokens(ids)[8:10] == ["VER", "B"]   # "VER" alone does not end the pair
    # a tag outside UPOS ends where the next word begins
    ids = gemma(" The/DT cat/NOUN", add_special_tokens=False).input_ids
    assert gemma.decode(priors.take_units(gemma, ids, 1, TagPairs)) == " The/DT"


def test_oracle_prior_of_k_tags(gemma):
    prompt = tagging_prompt(WORDS)
    ref = tagging_completion(WORDS, TAGS).strip()
    for k, text in [(1, " The/DET"), (2, " The/DET cat/NOUN"), (3, " The/DET cat/NOUN sat/VERB"),
                    (9, " The/DET cat/NOUN sat/VERB ./PUNCT")]:
        p = priors.oracle(gemma, [ref], k, [prompt], units=TagPairs)
        assert gemma.decode(p.ids[0]) == text
    assert priors.oracle(gemma, [ref], 0, [prompt], units=TagPairs).ids == [[]]
    # the list format still counts text pieces
    assert gemma.decode(priors.oracle(gemma, ["DET NOUN"], 1,
                                      [tagging_prompt(WORDS, "list")]).ids[0]) == " DET"


def test_frequent_prior_of_k_tags_after_each_items_words(gemma):
    train = ["A/DET dog/NOUN barked/VERB", "The/DET cat/NOUN", "Dogs/NOUN bark/VERB"]
    items = [["Die", "Katze", "schläft"], ["Ja"]]
    prompts = [tagging_prompt(w) for w in items]
    p = priors.frequent(gemma, ["x", "y"], 2, train_targets=train, units=TagPairs, words=items,
                        prompts=prompts)
    assert [gemma.decode(i) for i in p.ids] == [" Die/DET Katze/NOUN", " Ja/DET"]
    assert p.cost.train_examples == 3 and "'DET NOUN' (2/3 targets)" in p.note
    p = priors.frequent(gemma, ["x"], 1, train_targets=train, units=TagPairs, words=items[:1],
                        prompts=prompts[:1])
    assert gemma.decode(p.ids[0]) == " Die/DET"


class Stepping:
    """A stand-in model that writes a set answer one token per step and asks the stopping criteria after
    each."""
    device = torch.device("cpu")

    def __init__(self, tok, answer: str):
        self.answer = tok(answer, add_special_tokens=False).input_ids + [tok.eos_token_id]
        self.eos = tok.eos_token_id

    def generate(self, input_ids, attention_mask, max_new_tokens, stopping_criteria=None, **_):
        out = input_ids
        for token in self.answer[:max_new_tokens]:
            out = torch.cat([out, torch.tensor([[token]] * len(out))], dim=1)
            if token == self.eos or (stopping_criteria and bool(stopping_criteria[0](out, None).all())):
                break
        return out


def test_model_prior_stops_at_its_kth_tag(gemma):
    answer = " The/DET cat/NOUN sat/VERB ./PUNCT"
    p = priors.from_model(gemma, ["ref"], 2, prompts=[tagging_prompt(WORDS)],
                          model_loader=lambda: (Stepping(gemma, answer), gemma), weights={"path": "sft"},
                          train_cost=Cost(), batch_size=1, train_targets=[answer.strip()], units=TagPairs)
    assert gemma.decode(p.ids[0]) == " The/DET cat/NOUN"
    assert p.cost.extra_decode_steps_per_item == len(p.ids[0])   # the steps it took, no more


def test_list_format_stays_available():
    assert PosTask(test_langs=["de"]).tag_format == "pairs"
    assert PosTask(test_langs=["de"], format="list").tag_format == "list"
    cfg = load_config(SMOKE, ["tasks.pos={test_langs: [de]}"])
    assert "format" not in cfg.model_dump(exclude_none=True)["tasks"]["pos"]   # unset: the config hash stays
    assert load_config(SMOKE, ["tasks.pos={test_langs: [de], format: list}"]).hash() != cfg.hash()
    sentence = [TaggedSentence("ewt:1", tuple(WORDS), tuple(TAGS))]
    (listed,) = _pos_rows(sentence, "en-de", "list")
    assert listed["prompt"].endswith("\nTags:") and listed["completion"] == " DET NOUN VERB PUNCT"
    assert listed["tgt"] == "DET NOUN VERB PUNCT"
    (paired,) = _pos_rows(sentence, "en-de", "pairs")
    assert paired["prompt"].endswith("\nTagged:") and paired["tgt"] == "The/DET cat/NOUN sat/VERB ./PUNCT"
    assert paired["words"] == WORDS and paired["tags"] == TAGS
    with pytest.raises(Exception, match="format"):
        PosTask(test_langs=["de"], format="conll")


def test_report_intervals_score_pairs_by_their_words():
    from eval.report_stats import intervals

    refs = [tagging_completion(WORDS, TAGS).strip()] * 30
    shifted = [" The/DET sat/VERB ./PUNCT"] * 30   # a lost word: 1 of 4 (a tags-only reading would give more)
    rows = [{"arm": a, "experiment": "x", "per_item": {"output": o, "reference": refs}}
            for a, o in (("sft", list(refs)), ("base", shifted))]
    sft, base = intervals(rows, "pos")
    assert sft.mean == pytest.approx(1.0) and base.mean == pytest.approx(0.25) and base.p_vs_sft < 0.01
