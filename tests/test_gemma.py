"""The phenomenon the framework exists to test, on the real packaged Gemma-3-270M base model: asked to
translate into German, it often answers in English; one oracle prior token pulls it into German."""
import pytest

from align.priors import oracle
from core.data.budget import select
from core.data.parallel import BibleSource, PudSource, load_pairs
from core.errors import DataMissing
from core.models import load_model, load_tokenizer, resolve
from core.prompts import answer_completion, question_prompt, translation_prompt
from core.decoding import generate
from eval.mt import score_translations
from tests.conftest import DATA_DIR


@pytest.fixture(scope="module")
def gemma():
    path = resolve("gemma-3-270m")
    return load_model(path, "float32"), load_tokenizer(path)


def test_one_oracle_token_lowers_the_off_target_rate(gemma):
    model, tok = gemma
    try:
        pairs = load_pairs(PudSource(source="pud"), "en", "de", "test", DATA_DIR)
    except DataMissing:
        pairs = load_pairs(BibleSource(source="bible"), "en", "de", "test", None)
    pairs = select(pairs, 12, 0, "test")
    prompts = [translation_prompt(p.src, "en", "de") for p in pairs]
    refs = [p.tgt for p in pairs]
    base = generate(model, tok, prompts, max_new_tokens=40, batch_size=6)
    prior = oracle(tok, refs, 1)
    pretty = generate(model, tok, prompts, prior.ids, max_new_tokens=40, batch_size=6)
    base_off = score_translations([g.text for g in base], refs, "de")["metrics"]["off_target_rate"]
    pretty_off = score_translations([g.text for g in pretty], refs, "de")["metrics"]["off_target_rate"]
    print(f"off-target: base {base_off:.2f}, oracle k=1 {pretty_off:.2f}")
    assert pretty_off < base_off


def test_gemma_knows_capitals_in_english_far_above_chance(gemma):
    """Option log-likelihood scoring on a base model: 20 capital questions of the facts set, 4 options
    each."""
    from core.data.facts import questions
    from eval.knowledge import best_options, option_scores, score_choices

    model, tok = gemma
    items = [q for q in questions("en") if q.id.startswith("facts:capital:")][::10][:20]
    scores = option_scores(model, tok, [question_prompt(q.question) for q in items],
                           [[answer_completion(o) for o in q.options] for q in items], batch_size=16)
    metrics = score_choices(best_options(scores), [q.label for q in items], [4] * len(items))["metrics"]
    print(f"capitals, en: accuracy {metrics['accuracy']:.2f}")
    assert metrics["accuracy"] >= 0.6 and metrics["top_position_share"] < 0.6   # chance: 0.25
