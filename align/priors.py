"""PreTTY prior sources: where the first k answer tokens come from before the base model takes over.

Every source returns, per test item, at most k token ids in the *base* model's tokenizer, plus what it
cost. Priors that are text (a reference, another tokenizer's output) are tokenized as the start of a
completion (" " + text) so the pieces are those the base model would itself produce after "German:".
"""
from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable

from core.ledger import Cost
from core.prompts import translation_completion


@dataclass
class Priors:
    ids: list[list[int]]
    cost: Cost = field(default_factory=Cost)
    weights: dict | None = None  # the checkpoint a model prior came from
    note: str = ""


def text_prior(tok, text: str, k: int) -> list[int]:
    """First k base-tokenizer tokens of `text` read as the start of a completion; empty text gives no prior."""
    text = text.strip()
    if k == 0 or not text:
        return []
    return tok(translation_completion(text), add_special_tokens=False).input_ids[:k]


def oracle(tok, references: list[str], k: int, **_) -> Priors:
    return Priors([text_prior(tok, r, k) for r in references],
                  note="oracle: first reference tokens - an upper bound, not a deployable result")


def frequent(tok, references: list[str], k: int, train_targets: list[str], **_) -> Priors:
    """The most frequent first-k token sequence of the budget's target sides: one prior for every item."""
    counts = Counter(tuple(text_prior(tok, t, k)) for t in train_targets)
    top = list(counts.most_common(1)[0][0]) if counts else []
    return Priors([top for _ in references], Cost(train_examples=len(train_targets)),
                  note=f"frequent: {tok.decode(top)!r} ({counts.most_common(1)[0][1] if counts else 0}/{len(train_targets)} targets)")


def dictionary(tok, references: list[str], k: int, *, sources: list[str], src_lang: str,
               train_pairs: list[tuple[str, str]], dictionary_path: str | None = None, n_words: int = 1,
               **_) -> Priors:
    """The translation of each source sentence's first content word(s), from a dictionary file or else from a
    lexicon induced from the budget's pairs: no model runs."""
    from align.lexicon import induce, read_dictionary, stopwords_for

    stop = stopwords_for(src_lang)
    lexicon = read_dictionary(dictionary_path, stop) if dictionary_path else induce(train_pairs, stopwords=stop)
    ids = [text_prior(tok, lexicon.first_content_translation(s, n_words), k) for s in sources]
    origin = dictionary_path or f"induced from {len(train_pairs)} pairs"
    return Priors(ids, Cost() if dictionary_path else Cost(train_examples=len(train_pairs)),
                  note=f"dictionary ({origin}, {len(lexicon)} entries): a prior for {sum(map(bool, ids))}/{len(ids)} items")


def from_model(tok, references: list[str], k: int, prompts: list[str], model_loader: Callable, weights: dict,
               train_cost: Cost, batch_size: int, train_targets: list[str], **_) -> Priors:
    """The first k greedy tokens of another model: the run's SFT or LoRA checkpoint, or any task model.

    A model with another tokenizer generates as many of its own tokens as k base tokens of text usually take,
    and its text is tokenized as the base model would write it."""
    from eval.generate import generate

    if k == 0:
        return Priors([[] for _ in references])
    model, model_tok = model_loader()
    same_vocab = model_tok.get_vocab() == tok.get_vocab()
    n = k if same_vocab else _task_tokens(k, tok, model_tok, train_targets)
    gens = generate(model, model_tok, prompts, max_new_tokens=n, batch_size=batch_size,
                    stop_at_newline=False, desc=f"prior k={k}")
    if same_vocab:
        ids = [g.new_ids[:k] for g in gens]
    else:
        ids = [text_prior(tok, complete_text(model_tok.decode(g.new_ids, skip_special_tokens=True),
                                             cut_off=len(g.new_ids) == n), k) for g in gens]
    steps = sum(len(g.new_ids) for g in gens) / max(len(gens), 1)
    cost = Cost(**{**train_cost.as_dict(), "extra_model_calls_per_item": 1.0,
                   "extra_decode_steps_per_item": steps})
    note = "" if same_vocab else f"another tokenizer: up to {n} task-model tokens for k={k} base tokens"
    return Priors(ids, cost, weights, note)


def _task_tokens(k: int, tok, model_tok, texts: list[str]) -> int:
    """Task-model tokens for k base tokens, by the two tokenizers' lengths on the budget's targets (a character-
    level model needs several tokens per base token), with 3 base tokens to spare for a cut-off last word."""
    sample = [translation_completion(t) for t in texts[:256]]
    base = sum(len(tok(t, add_special_tokens=False).input_ids) for t in sample)
    task = sum(len(model_tok(t, add_special_tokens=False).input_ids) for t in sample)
    return math.ceil((k + 3) * (task / base if base else 1.0))


def complete_text(text: str, cut_off: bool) -> str:
    """The part of another model's generation that the base tokenizer can take as written: the answer ends at a
    newline, bytes of an unfinished character (decoded as U+FFFD) are dropped, and a generation cut off at the
    token limit loses its last word if more than one is left: it may be partial ("spr" of "sprach") and
    would tokenize into pieces the base model would not write. Text without spaces (CJK) has no word to drop."""
    answer, newline, _ = text.partition("\n")
    answer = answer.rstrip("\ufffd")
    if newline or not cut_off or answer[-1:].isspace() or len(answer.split()) < 2:
        return answer
    return answer.rstrip().rsplit(None, 1)[0]


SOURCES = {"oracle": oracle, "frequent": frequent, "dictionary": dictionary,
           "sft": from_model, "lora": from_model, "task_model": from_model}
