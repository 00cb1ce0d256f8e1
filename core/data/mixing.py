"""The training sequence of a pretraining arm: documents cut into blocks, languages sampled by probability,
stopped at exactly the token budget.

Every block comes from one document (no packing, so no document attends to another). Languages are drawn
with explicit probabilities or with p_l proportional to n_l^alpha (n_l: the language's tokens), from a
generator seeded by the experiment's seed, so the same config always yields the same sequence.
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field

from core.data.types import Document
from core.errors import UserError


@dataclass
class Stream:
    rows: list[dict]                   # {"lang", "doc", "input_ids"} in training order
    probabilities: dict[str, float]
    pool_tokens: dict[str, int]        # n_l: every token of the language's text
    tokens: dict[str, int]             # realised: tokens of the language in rows
    decontamination: dict = field(default_factory=dict)   # dropped before sampling (decontaminate.py)

    @property
    def passes(self) -> dict[str, float]:
        """Tokens trained on over tokens of text, per language: above 1, text is repeated."""
        return {lang: round(n / self.pool_tokens[lang], 4) for lang, n in self.tokens.items()}

    def manifest(self) -> dict:
        record = {"token_budget": sum(self.tokens.values()), "probabilities": self.probabilities,
                  "pool_tokens": self.pool_tokens, "tokens_by_lang": self.tokens,
                  "passes_by_lang": self.passes, "sequences": len(self.rows)}
        return {**record, "decontamination": self.decontamination} if self.decontamination else record


def sampling_probabilities(pool_tokens: dict[str, int], alpha: float,
                           explicit: dict[str, float] | None = None) -> dict[str, float]:
    if explicit:
        return dict(explicit)
    weights = {lang: n ** alpha for lang, n in pool_tokens.items()}
    total = sum(weights.values())
    return {lang: w / total for lang, w in weights.items()}


def blocks(docs: list[Document], tokenizer, max_length: int) -> list[tuple[str, list[int]]]:
    """(document id, token ids) blocks of at most max_length tokens, each starting with BOS when the model has
    one."""
    bos = [tokenizer.bos_token_id] if tokenizer.bos_token_id is not None else []
    width = max_length - len(bos)
    out = []
    for doc, ids in zip(docs, tokenizer([d.text for d in docs], add_special_tokens=False).input_ids):
        for start in range(0, len(ids), width):
            piece = ids[start:start + width]
            if len(bos + piece) > 1:   # a one-token sequence has nothing to predict
                out.append((doc.id, bos + piece))
    return out


def build(docs_by_lang: dict[str, list[Document]], tokenizer, token_budget: int, max_length: int, seed: int,
          alpha: float, explicit: dict[str, float] | None = None, what: str = "pretraining arm") -> Stream:
    pools = {lang: blocks(docs, tokenizer, max_length) for lang, docs in docs_by_lang.items()}
    for lang, pool in pools.items():
        if not pool:
            raise UserError(f"{what}: no text in language {lang!r} from the configured sources")
    pool_tokens = {lang: sum(len(ids) for _, ids in pool) for lang, pool in pools.items()}
    probs = sampling_probabilities(pool_tokens, alpha, explicit)
    langs = list(pools)
    rng = random.Random(seed)
    orders = {lang: [] for lang in langs}
    rows, total = [], 0
    while total < token_budget:
        lang = rng.choices(langs, weights=[probs[lang] for lang in langs])[0] if len(langs) > 1 else langs[0]
        if not orders[lang]:   # a new pass over the language's blocks, in a fresh order
            orders[lang] = rng.sample(range(len(pools[lang])), len(pools[lang]))
        doc, ids = pools[lang][orders[lang].pop()]
        remaining = token_budget - total
        ids = ids[:remaining]   # the last block is cut so the total is the budget exactly ...
        if remaining - len(ids) == 1 and len(ids) > 2:
            ids = ids[:-1]      # ... and never leaves one token over: a block that would predict nothing
        rows.append({"lang": lang, "doc": doc, "input_ids": ids})
        total += len(ids)
    tokens = {lang: 0 for lang in langs}
    for r in rows:
        tokens[r["lang"]] += len(r["input_ids"])
    return Stream(rows, probs, pool_tokens, tokens)
