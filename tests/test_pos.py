import re
from pathlib import Path

import conllu
import pytest

from core.data import pud
from core.data.ud import UPOS, TaggedSentence, load_tagged
from core.errors import DataMissing, UserError
from core.prompts import tagging_completion, tagging_prompt
from eval.pos import score_tagging

_EMPTY_NODE_SENT = "weblog-blogspot.com_aggressivevoicedaily_20060814163400_ENG_20060814_163400-0007"


def _bare(text: str) -> str:
    return "".join(text.split())


def _texts(folder: Path) -> dict[str, str]:
    texts = {}
    for path in sorted(folder.glob("*.conllu")):
        with open(path, encoding="utf-8") as f:
            texts.update((s.metadata["sent_id"], s.metadata["text"]) for s in conllu.parse_incr(f))
    return texts


def _mwt_forms(folder: Path) -> dict[str, list[str]]:
    """sent_id -> the multi-word tokens (range lines) it holds, read from the raw lines."""
    forms: dict[str, list[str]] = {}
    for path in sorted(folder.glob("*.conllu")):
        sent_id = None
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.startswith("# sent_id = "):
                sent_id = line.split("= ", 1)[1]
            elif re.match(r"\d+-\d+\t", line):
                forms.setdefault(sent_id, []).append(line.split("\t")[1])
    return forms


@pytest.fixture(scope="module")
def ewt(data_dir) -> list[TaggedSentence]:
    return load_tagged("en", "train", data_dir)


@pytest.fixture(scope="module")
def ewt_dev(data_dir) -> list[TaggedSentence]:
    return load_tagged("en", "dev", data_dir)


@pytest.fixture(scope="module")
def pud_de(data_dir) -> list[TaggedSentence]:
    return load_tagged("de", "test", data_dir)


def test_ewt_train_is_the_test_file_and_dev_the_dev_file(ewt, ewt_dev, data_dir):
    assert (len(ewt), len(ewt_dev)) == (2077, 2001)   # no sentence lacks UPOS
    assert ewt[0].id == "ewt:weblog-blogspot.com_zentelligence_20040423000200_ENG_20040423_000200-0001"
    assert ewt[0].words == ("What", "if", "Google", "Morphed", "Into", "GoogleOS", "?")
    first = ewt_dev[0]
    assert first.id == "ewt:weblog-blogspot.com_nominations_20041117172713_ENG_20041117_172713-0001"
    assert first.words == ("From", "the", "AP", "comes", "this", "story", ":")
    assert first.tags == ("ADP", "DET", "PROPN", "VERB", "DET", "NOUN", "PUNCT")
    assert len({s.id for s in ewt + ewt_dev}) == len(ewt) + len(ewt_dev)   # disjoint: dev is no training data
    for pool in (ewt, ewt_dev):
        assert all(len(s.words) == len(s.tags) > 0 and set(s.tags) <= set(UPOS) for s in pool)
    # English contractions split into words that spell the surface ("did" "n't"); an empty node's copied
    # word ("write" in an ellipsis) would add letters the text lacks
    texts = _texts(data_dir / "ud" / "UD_English-EWT")
    assert all(_bare("".join(s.words)) == _bare(texts[s.id.removeprefix("ewt:")]) for s in ewt + ewt_dev)
    elliptic = next(s for s in ewt_dev if s.id == f"ewt:{_EMPTY_NODE_SENT}")
    assert elliptic.words.count("write") == 1


def test_pud_test_aligns_with_text(pud_de, data_dir):
    folder = data_dir / "ud" / "UD_German-PUD"
    assert len(pud_de) == 1000
    assert [s.id for s in pud_de] == [p.id for p in pud.load("de", "de", "test", data_dir)]
    assert all(len(s.words) == len(s.tags) > 0 and set(s.tags) <= set(UPOS) for s in pud_de)
    texts, mwt = _texts(folder), _mwt_forms(folder)
    plain = [s for s in pud_de if s.id.removeprefix("pud:") not in mwt]
    assert len(plain) > 500
    assert all("".join(s.words) == _bare(texts[s.id.removeprefix("pud:")]) for s in plain)


def test_pud_splits_multiword_tokens(pud_de, data_dir):
    mwt = _mwt_forms(data_dir / "ud" / "UD_German-PUD")
    with_zum = [s for s in pud_de if "zum" in mwt.get(s.id.removeprefix("pud:"), [])]
    assert with_zum
    for s in with_zum:
        assert "zum" not in s.words
        pairs = set(zip(zip(s.words, s.words[1:]), zip(s.tags, s.tags[1:])))
        assert (("zu", "dem"), ("ADP", "DET")) in pairs


def test_missing_data_and_bad_requests(tmp_path, data_dir):
    for split, lang in [("train", "en"), ("test", "de")]:
        with pytest.raises(DataMissing, match=r"UD_.*YARN_DATA_DIR"):
            load_tagged(lang, split, tmp_path)
        with pytest.raises(DataMissing, match="data directory not found"):
            load_tagged(lang, split, tmp_path / "nope")
        with pytest.raises(DataMissing, match="no data directory"):
            load_tagged(lang, split, None)
    with pytest.raises(DataMissing, match="UD_Romanian-PUD"):   # a known language without PUD in the data
        load_tagged("ro", "test", data_dir)
    # not DataMissing: no other data source would fix it, so a fallback list must not skip past it
    with pytest.raises(UserError, match="only English") as e:
        load_tagged("de", "train", data_dir)
    assert type(e.value) is UserError
    with pytest.raises(UserError, match="unknown language code"):
        load_tagged("xx", "test", data_dir)
    with pytest.raises(ValueError, match="split"):
        load_tagged("en", "validation", data_dir)


def test_list_prompt_and_completion_format():
    """The earlier format, kept as `format: list`."""
    assert tagging_prompt(["The", "cat", "sat", "."], "list") == (
        "Tag each word with its Universal Dependencies part-of-speech tag "
        "(ADJ ADP ADV AUX CCONJ DET INTJ NOUN NUM PART PRON PROPN PUNCT SCONJ SYM VERB X).\n"
        "Words: The | cat | sat | .\nTags:")
    prompt = tagging_prompt(["kostet", "25 000", "Euro"], "list")
    assert prompt.endswith("Words: kostet | 25 000 | Euro\nTags:")
    words = ["The", "cat", "sat", "."]
    assert tagging_completion(words, ["DET", "NOUN", "VERB", "PUNCT"], "list") == " DET NOUN VERB PUNCT"


def test_list_answers_forgive_case_and_stuck_punctuation():
    gold = [("DET", "NOUN", "VERB", "PUNCT")] * 6
    outputs = [" DET NOUN VERB PUNCT",
               'det "NOUN" VERB PUNCT.', "DET | NOUN | VERB | PUNCT",   # forgiven: case, punctuation, "|"
               "DET NOUN VERB", "DET NN VERB PUNCT", ""]               # a tag short, not a tag, nothing
    per_item = score_tagging(outputs, gold)["per_item"]
    assert per_item == {"accuracy": [1.0, 1.0, 1.0, 0.0, 0.0, 0.0], "invalid": [False] * 3 + [True] * 3}


def test_score_tagging():
    gold = [("DET", "NOUN", "VERB", "PUNCT"), ("PRON", "VERB"), ("NOUN", "PUNCT"), ("ADJ", "NOUN")]
    perfect = score_tagging([tagging_completion(["w"] * len(g), g, "list") for g in gold], gold)
    assert perfect["metrics"] == {"upos_accuracy": 1.0, "invalid_rate": 0.0, "unparseable_rate": 0.0,
                                  "misaligned_rate": 0.0, "position_accuracy": 1.0}
    outputs = [" DET NOUN NOUN PUNCT",   # one wrong tag: 3 of 4
               " PRON VERB",
               " NOUN PUNCT PUNCT",      # misaligned: all its tokens count wrong
               " The cat sat"]           # unparseable
    result = score_tagging(outputs, gold)
    assert result["metrics"] == pytest.approx({"upos_accuracy": 5 / 10, "invalid_rate": 2 / 4,
                                               "unparseable_rate": 1 / 4, "misaligned_rate": 1 / 4,
                                               # lenient: 3 + 2 + the misaligned item's first 2 tags + 0
                                               "position_accuracy": 7 / 10})
    assert result["per_item"] == {"accuracy": [0.75, 1.0, 0.0, 0.0], "invalid": [False, False, True, True]}
    with pytest.raises(ValueError):
        score_tagging(outputs[:2], gold)
