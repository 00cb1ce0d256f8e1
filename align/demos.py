"""In-context demonstrations: which of the budget's labelled rows a test item is shown, and the prompt they
make (Alves et al. 2023; ALMA's few-shot baseline).

Demonstrations come only from the budget's training rows, never the test item itself (same id or same source
text). `random` is a seeded draw per item, so an item's shots do not depend on which other items are
evaluated; `similar` ranks the rows by BM25 over the source sentences (rank_bm25; words, or character bigrams
for languages written without spaces; ties in a seeded order per item) and puts the most similar last, next to
the test item. A prompt over
the bound loses whole shots, the least similar first, and the loss is counted.
"""
from __future__ import annotations

import random
import re
from dataclasses import dataclass

from rank_bm25 import BM25Okapi

# languages whose words are not separated by spaces: BM25 over character bigrams
_UNSPACED = {"zh", "ja", "th", "my", "km", "lo"}


def _terms(text: str, lang: str) -> list[str]:
    text = text.lower()
    if lang in _UNSPACED:
        chars = [c for c in text if not c.isspace()]
        return [a + b for a, b in zip(chars, chars[1:])] or chars
    return re.findall(r"\w+", text)


def _eligible(pool: list[dict], item: dict) -> list[int]:
    """Rows that may be shown with `item`: never the item itself, under its id or as the same source."""
    return [j for j, r in enumerate(pool) if r["id"] != item["id"] and r["src"] != item["src"]]


def choose_shots(pool: list[dict], items: list[dict], shots: int, select: str, seed: int,
                 lang: str) -> list[list[dict]]:
    """Each item's demonstrations from `pool` (the budget's rows of its task and unit), in prompt order."""
    if shots == 0 or not pool:
        return [[] for _ in items]
    if select == "random":
        out = []
        for item in items:
            eligible = _eligible(pool, item)
            rng = random.Random(f"{seed}:{item['id']}")   # per item: independent of the other items
            out.append([pool[j] for j in rng.sample(eligible, min(shots, len(eligible)))])
        return out
    if select != "similar":
        raise ValueError(f"select {select!r}: random or similar")
    index = BM25Okapi([_terms(r["src"], lang) for r in pool])
    out = []
    for item in items:
        scores = index.get_scores(_terms(item["src"], lang))
        eligible = _eligible(pool, item)
        # best first; ties (e.g. no shared word at all) in a seeded order of the item's own, not the budget's
        # first rows for every item
        tie = list(range(len(pool)))
        random.Random(f"{seed}:{item['id']}").shuffle(tie)
        best = sorted(eligible, key=lambda j: (-scores[j], tie[j]))[:shots]
        out.append([pool[j] for j in reversed(best)])   # most similar last, next to the test item
    return out


@dataclass
class Prompted:
    prompts: list[str]
    shown: list[list[dict]]    # per item, the shots in its prompt
    shots_used: list[int]      # per item, after the length bound
    dropped: int               # shots dropped by the bound, over all items
    extra_tokens: list[int]    # per item: prompt tokens beyond the zero-shot prompt's


def few_shot_prompts(task, tok, items: list[dict], chosen: list[list[dict]], max_tokens: int) -> Prompted:
    """The task's few-shot prompt of each item, whole shots dropped from the front (the least similar) while
    it is longer than `max_tokens`."""
    prompts, shown, dropped, extra = [], [], 0, []
    for item, shots in zip(items, chosen):
        shots = list(shots)
        zero = len(tok(item["prompt"]).input_ids)
        prompt = task.few_shot_prompt(item, shots)
        length = len(tok(prompt).input_ids)
        while shots and length > max_tokens:
            shots.pop(0)
            dropped += 1
            prompt = task.few_shot_prompt(item, shots)
            length = len(tok(prompt).input_ids)
        prompts.append(prompt)
        shown.append(shots)
        extra.append(length - zero)
    return Prompted(prompts, shown, [len(s) for s in shown], dropped, extra)
