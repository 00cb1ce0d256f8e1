"""Nudging (`align.nudge`): threshold 1 is the aligned model's greedy decoding, threshold 0 the base model's,
and in between each token comes from the model the base model's own confidence picks, at the cost of only
the aligned forward passes some row needed."""
import pytest
import torch

from align.nudge import nudge_generate
from core.decoding import _newline_ids, generate

PROMPTS = ["In the beginning", "And God said, Let there be light: and there was",
           "Translate this from English into German:\nThe Lord is my shepherd\nGerman:", "Jesus wept",
           "Am Anfang", "Und Gott sprach"]
NEW = 12


@pytest.fixture(scope="module")
def tok(tiny_model):
    from core.models import load_tokenizer

    return load_tokenizer(tiny_model)


def _llama(path, tok, seed):
    """The tiny Llama's architecture and vocabulary with its own random weights. Larger weights and an untied,
    scaled-up head make the distributions peaked enough for a threshold to split them clearly (the packaged
    tiny model's are almost uniform, and its tied embeddings just echo the last token); favouring eos and
    newline makes some rows stop early."""
    from transformers import AutoConfig, LlamaForCausalLM

    config = AutoConfig.from_pretrained(path)
    config.tie_word_embeddings, config.initializer_range = False, 0.1
    with torch.random.fork_rng():   # other tests' random state stays as it was
        torch.manual_seed(seed)
        model = LlamaForCausalLM(config).eval()
    with torch.no_grad():
        model.lm_head.weight.mul_(2.0)
        model.lm_head.weight[[tok.eos_token_id, *_newline_ids(tok)]] *= 4.0
    return model


@pytest.fixture(scope="module")
def models(tiny_model, tok):
    return _llama(tiny_model, tok, 0), _llama(tiny_model, tok, 1)


def _batches(tok, batch_size):
    """The items of each batch, in the order generate and nudge_generate share."""
    order = sorted(range(len(PROMPTS)), key=lambda i: -len(tok(PROMPTS[i]).input_ids))
    return [order[s:s + batch_size] for s in range(0, len(order), batch_size)]


@torch.no_grad()
def _next(model, ids: list[int]) -> tuple[float, int]:
    """Top-1 probability and argmax after `ids`, one unpadded sequence, no cache."""
    logits = model(torch.tensor([ids])).logits[0, -1].float()
    return torch.softmax(logits, -1).max().item(), int(logits.argmax())


@pytest.mark.parametrize("stop_at_newline,batch_size", [(False, 2), (True, 3)])
def test_threshold_one_is_the_aligned_model(models, tok, stop_at_newline, batch_size):
    base, aligned = models
    kw = dict(max_new_tokens=NEW, batch_size=batch_size, stop_at_newline=stop_at_newline)
    plain, want = generate(base, tok, PROMPTS, **kw), generate(aligned, tok, PROMPTS, **kw)
    assert any(p.new_ids != w.new_ids for p, w in zip(plain, want)), "the two models must disagree"
    gens, items = nudge_generate(base, aligned, tok, PROMPTS, threshold=1.0, **kw)
    assert gens == want
    for batch in _batches(tok, batch_size):
        ran = max(gens[i].steps for i in batch)
        for i in batch:
            assert items[i].supplied == list(range(gens[i].steps))
            # prefill at the first step, then one new token per step
            assert (items[i].aligned_calls, items[i].aligned_positions) == (ran, ran - 1)


@pytest.mark.parametrize("stop_at_newline,batch_size", [(False, 3), (True, 2)])
def test_threshold_zero_is_the_base_model(models, tok, stop_at_newline, batch_size):
    base, aligned = models
    kw = dict(max_new_tokens=NEW, batch_size=batch_size, stop_at_newline=stop_at_newline)
    want = generate(base, tok, PROMPTS, **kw)
    assert any(w.new_ids != a.new_ids for w, a in zip(want, generate(aligned, tok, PROMPTS, **kw)))
    gens, items = nudge_generate(base, aligned, tok, PROMPTS, threshold=0.0, **kw)
    assert gens == want
    assert all(it.supplied == [] and it.aligned_calls == 0 and it.aligned_positions == 0 for it in items)


@pytest.mark.parametrize("stop_at_newline", [False, True])
def test_intermediate_threshold_follows_base_confidence(models, tok, stop_at_newline):
    base, aligned = models
    first = sorted(_next(base, tok(p).input_ids)[0] for p in PROMPTS)
    threshold = (first[2] + first[3]) / 2   # the median: half the prompts start unsure
    kw = dict(max_new_tokens=NEW, batch_size=2, stop_at_newline=stop_at_newline)
    gens, items = nudge_generate(base, aligned, tok, PROMPTS, threshold=threshold, **kw)
    plain, full = generate(base, tok, PROMPTS, **kw), generate(aligned, tok, PROMPTS, **kw)
    assert any(g.new_ids != p.new_ids and g.new_ids != f.new_ids for g, p, f in zip(gens, plain, full))

    stops = {tok.eos_token_id, *(_newline_ids(tok) if stop_at_newline else ())}
    checked = {True: 0, False: 0}
    for prompt, gen, item in zip(PROMPTS, gens, items):
        assert gen.steps == len(gen.new_ids) + (not gen.hit_limit)
        assert item.supplied == sorted(set(item.supplied)) and all(0 <= j < gen.steps for j in item.supplied)
        ids = tok(prompt).input_ids
        for j in range(gen.steps):
            context = ids + gen.new_ids[:j]
            p_top1, base_token = _next(base, context)
            supplied = j in item.supplied
            if abs(p_top1 - threshold) > 1e-5 * threshold:   # cached and uncached fp32 may differ by rounding
                assert supplied == (p_top1 < threshold), (prompt, j, p_top1, threshold)
                checked[supplied] += 1
            token = _next(aligned, context)[1] if supplied else base_token
            if j < len(gen.new_ids):
                assert gen.new_ids[j] == token, (prompt, j)
            else:
                assert token in stops
    assert checked[True] and checked[False]

    # the aligned model ran exactly at the steps where some row of the batch was unsure, and caught up to
    # the last of them
    calls = runs = 0
    for batch in _batches(tok, 2):
        unsure = set().union(*(items[i].supplied for i in batch))
        ran = max(gens[i].steps for i in batch)
        for i in batch:
            assert items[i].aligned_calls == len(unsure) <= ran
            assert items[i].aligned_positions == max(unsure, default=0)
        calls, runs = calls + len(unsure), runs + ran
    assert 0 < calls < runs
