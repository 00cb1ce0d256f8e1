import pytest
from sacrebleu.metrics import BLEU, CHRF

from eval.mt import score_translations

REFS = ["Der Hund schläft unter dem großen Tisch in der Küche.",
        "Morgen fahren wir mit dem Zug nach Berlin.",
        "Sie hat das Buch gestern Abend zu Ende gelesen."]
HYPS = ["Der Hund schläft unter dem Tisch in der Küche.",
        "Wir fahren morgen mit dem Zug nach Berlin.",
        "Sie las das Buch gestern Abend."]


def test_scores_match_sacrebleu_called_directly():
    result = score_translations(HYPS, REFS, "de")
    bleu, chrf = BLEU(tokenize="13a"), CHRF()
    assert result["metrics"]["bleu"] == pytest.approx(bleu.corpus_score(HYPS, [REFS]).score)
    assert result["metrics"]["chrf"] == pytest.approx(chrf.corpus_score(HYPS, [REFS]).score)
    assert result["signatures"] == {"bleu": str(bleu.get_signature()), "chrf": str(chrf.get_signature())}
    assert result["per_item"]["chrf"] == pytest.approx(
        [chrf.sentence_score(h, [r]).score for h, r in zip(HYPS, REFS)])
    assert 0 < result["metrics"]["bleu"] < 100


def test_identical_outputs_score_100():
    metrics = score_translations(REFS, REFS, "de")["metrics"]
    assert metrics["bleu"] == pytest.approx(100.0)
    assert metrics["chrf"] == pytest.approx(100.0)
    assert metrics["off_target_rate"] == 0.0 and metrics["off_target_undecided_rate"] == 0.0


def test_off_target_detection():
    hyps = ["Der Hund schläft unter dem großen Tisch in der Küche.",      # German: on target
            "The dog is sleeping under the big table in the kitchen.",  # English: off target
            "", "   "]                                                   # empty: off target
    result = score_translations(hyps, [REFS[0]] * 4, "de")
    assert result["per_item"]["off_target"] == [False, True, True, True]
    assert result["per_item"]["lang"] == ["de", "en", None, None]
    assert result["metrics"]["off_target_rate"] == pytest.approx(0.75)


def test_too_short_to_tell_is_undecided_not_off_target():
    hyps = ["Ja.",                                                      # lingua: Polish, barely; undecided
            "Pies śpi pod dużym stołem w kuchni, a kot leży obok.",     # Polish sentence: off target
            "",                                                         # empty: off target, not undecided
            "Да.",                                                      # short, but only Russian is Cyrillic
            "Der Hund schläft unter dem großen Tisch in der Küche."]    # German: on target
    result = score_translations(hyps, [REFS[0]] * 5, "de")
    assert result["per_item"]["off_target"] == [False, True, True, True, False]
    assert result["per_item"]["off_target_undecided"] == [True, False, False, False, False]
    assert result["metrics"]["off_target_rate"] == pytest.approx(0.6)
    assert result["metrics"]["off_target_undecided_rate"] == pytest.approx(0.2)


def test_chinese_target_uses_zh_tokenizer():
    refs = ["我们明天坐火车去北京。", "这本书非常有意思。"]
    result = score_translations(refs, refs, "zh")
    assert "tok:zh" in result["signatures"]["bleu"]
    assert result["metrics"]["bleu"] == pytest.approx(100.0)
    assert result["per_item"]["off_target"] == [False, False]


def test_japanese_target_uses_mecab_tokenizer():
    pytest.importorskip("MeCab", reason="sacrebleu[ja] not installed")
    refs = ["私は明日電車で東京に行きます。"]
    assert "tok:ja-mecab" in score_translations(refs, refs, "ja")["signatures"]["bleu"]


def test_length_mismatch_raises():
    with pytest.raises(ValueError, match="2 hypotheses but 3 references"):
        score_translations(HYPS[:2], REFS, "de")

