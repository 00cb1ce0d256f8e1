"""PreTTY priors and prior-token decoding, on the tiny in-process model."""
import pytest
import torch

from align import priors
from core.models import load_model, load_tokenizer
from eval.generate import generate


@pytest.fixture(scope="module")
def tok(tiny_model):
    return load_tokenizer(tiny_model)


@pytest.fixture(scope="module")
def model(tiny_model):
    torch.manual_seed(0)
    return load_model(tiny_model, "float32")


def test_text_prior_is_the_start_of_the_completion(tok):
    ids = priors.text_prior(tok, "  Und Gott sprach", 2)
    assert ids == tok(" Und Gott sprach", add_special_tokens=False).input_ids[:2]
    assert tok.decode(ids) == " Und Gott"  # leading-space pieces, as after "German:"


def test_empty_and_zero_priors(tok):
    assert priors.text_prior(tok, "   ", 3) == []
    assert priors.text_prior(tok, "Das", 0) == []


def test_prior_longer_than_the_answer_is_the_whole_answer(tok):
    whole = tok(" Ja", add_special_tokens=False).input_ids
    assert priors.text_prior(tok, "Ja", 50) == whole


def test_oracle_uses_each_reference(tok):
    p = priors.oracle(tok, ["Da sprach Gott", "Und Gott"], 1)
    assert [tok.decode(i).strip() for i in p.ids] == ["Da", "Und"]
    assert p.cost.train_examples == 0 and "upper bound" in p.note


def test_frequent_takes_the_most_common_first_token(tok):
    p = priors.frequent(tok, ["a", "b", "c"], 1, train_targets=["Und Gott", "Und er", "Da sprach"])
    assert all(tok.decode(i).strip() == "Und" for i in p.ids)
    assert p.cost.train_examples == 3


def test_output_starts_with_the_prior(tok, model):
    prompts = ["Translate this from English into German:\nEnglish: And God said\nGerman:"]
    prior = priors.text_prior(tok, "Und Gott", 2)
    (g,) = generate(model, tok, prompts, [prior], max_new_tokens=5, batch_size=1)
    assert g.prior_ids == prior and g.text.startswith("Und Gott")


def test_batched_decoding_with_mixed_prior_lengths_equals_one_by_one(tok, model):
    prompts = [f"Translate this from English into German:\nEnglish: {s}\nGerman:"
               for s in ["In the beginning", "And the earth was without form, and void", "Amen", "Jesus wept."]]
    prs = [priors.text_prior(tok, t, k) for t, k in [("Im Anfang", 2), ("Und die Erde", 0), ("Amen", 1), ("Jesus", 3)]]
    batched = generate(model, tok, prompts, prs, max_new_tokens=6, batch_size=4, stop_at_newline=False)
    single = [generate(model, tok, [p], [q], max_new_tokens=6, batch_size=1, stop_at_newline=False)[0]
              for p, q in zip(prompts, prs)]
    assert [b.new_ids for b in batched] == [s.new_ids for s in single]
