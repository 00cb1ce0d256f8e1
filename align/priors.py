"""PreTTY prior sources: where the first k answer tokens come from before the base model takes over.

Every source returns, per test item, at most k token ids in the *base* model's tokenizer, plus what it
cost. Priors that are text (a reference, another tokenizer's output) are tokenized as the start of a
completion (" " + text) so the pieces are those the base model would itself produce after "German:".
"""
from __future__ import annotations

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


def from_model(tok, references: list[str], k: int, prompts: list[str], model_loader: Callable, weights: dict,
               train_cost: Cost, batch_size: int, **_) -> Priors:
    """The first k greedy tokens of a trained model (the run's SFT or LoRA checkpoint)."""
    from eval.generate import generate

    if k == 0:
        return Priors([[] for _ in references])
    model, model_tok = model_loader()
    gens = generate(model, model_tok, prompts, max_new_tokens=max(k, 1), batch_size=batch_size,
                    stop_at_newline=False, desc=f"prior k={k}")
    same_vocab = model_tok.get_vocab() == tok.get_vocab()
    ids = [g.new_ids[:k] if same_vocab else text_prior(tok, model_tok.decode(g.new_ids[:k], skip_special_tokens=True), k)
           for g in gens]
    steps = sum(len(g.new_ids[:k]) for g in gens) / max(len(gens), 1)
    cost = Cost(**{**train_cost.as_dict(), "extra_model_calls_per_item": 1.0,
                   "extra_decode_steps_per_item": steps})
    return Priors(ids, cost, weights)


SOURCES = {"oracle": oracle, "frequent": frequent, "sft": from_model, "lora": from_model}
