"""The pretraining arms' training sequence: exactly the token budget, one document per sequence, languages
sampled by alpha-temperature or explicit probabilities, the same sequence for the same seed."""
import pytest

from core.data.mixing import build, sampling_probabilities
from core.data.mono import Document


class WordTokenizer:
    """One token per word; id = position in a growing vocabulary (BOS = 0)."""
    bos_token_id = 0

    def __init__(self):
        self.vocab = {}

    def __call__(self, texts, add_special_tokens=False):
        class Out:
            pass
        out = Out()
        out.input_ids = [[self.vocab.setdefault(w, len(self.vocab) + 1) for w in t.split()] for t in texts]
        return out


def corpus(lang: str, n_docs: int, words: int) -> list[Document]:
    return [Document(f"{lang}:{d}", " ".join(f"{lang}{d}w{i}" for i in range(words))) for d in range(n_docs)]


DOCS = {"en": corpus("en", 40, 50), "de": corpus("de", 10, 50), "fr": corpus("fr", 2, 50)}


@pytest.mark.parametrize("budget", [2, 3, 97, 1000, 5001])
def test_stream_holds_exactly_the_token_budget_and_no_one_token_sequence(budget):
    s = build(DOCS, WordTokenizer(), budget, max_length=16, seed=0, alpha=0.3)
    assert sum(len(r["input_ids"]) for r in s.rows) == budget == sum(s.tokens.values())
    assert all(2 <= len(r["input_ids"]) <= 16 for r in s.rows)


def test_each_sequence_is_one_document_starting_with_bos():
    tok = WordTokenizer()
    s = build(DOCS, tok, 3000, max_length=16, seed=0, alpha=0.3)
    words = {v: w for w, v in tok.vocab.items()}
    for r in s.rows:
        assert r["input_ids"][0] == 0
        doc = r["doc"].split(":")[1]
        assert all(words[i].startswith(f"{r['lang']}{doc}w") for i in r["input_ids"][1:])


def test_alpha_temperature_probabilities():
    p = sampling_probabilities({"en": 1000, "de": 100}, alpha=0.3)
    assert p["en"] / p["de"] == pytest.approx(10 ** 0.3)
    assert sum(p.values()) == pytest.approx(1)
    assert sampling_probabilities({"en": 1000, "de": 100}, alpha=1.0)["en"] == pytest.approx(1000 / 1100)


def test_realised_shares_follow_the_probabilities_and_small_languages_repeat():
    s = build(DOCS, WordTokenizer(), 20000, max_length=16, seed=0, alpha=0.3)
    share = {lang: n / 20000 for lang, n in s.tokens.items()}
    for lang in DOCS:
        assert share[lang] == pytest.approx(s.probabilities[lang], abs=0.03)
    small = build(DOCS, WordTokenizer(), 1500, 16, seed=0, alpha=0.3)
    assert small.passes["fr"] > 1 > small.passes["en"]   # fr's 108 tokens, sampled at ~1/4, are seen again
    explicit = build(DOCS, WordTokenizer(), 20000, 16, 0, 0.3, {"en": 0.1, "de": 0.1, "fr": 0.8})
    assert explicit.tokens["fr"] / 20000 == pytest.approx(0.8, abs=0.03)


def test_same_seed_same_sequence_other_seed_other_sequence():
    a = build(DOCS, WordTokenizer(), 3000, 16, seed=1, alpha=0.3).rows
    assert a == build(DOCS, WordTokenizer(), 3000, 16, seed=1, alpha=0.3).rows
    assert a != build(DOCS, WordTokenizer(), 3000, 16, seed=2, alpha=0.3).rows
