"""Degenerate outputs: answers that ran to the token limit or loop. A base model, with or without a prior,
often repeats itself (English→Russian with one oracle token: " - - - ..." to the limit); the degeneration
rate tells how much of a quality gap is loops rather than wrong translations or tags."""
from __future__ import annotations

import re

# a unit (word, or character where words are not separated by spaces) n-gram, n <= MAX_N, repeated this many
# times in a row is a loop
MAX_N = 4
TIMES = 3
UNSPACED = {"zh", "ja", "th", "my", "km", "lo"}


def units(text: str, lang: str) -> list[str]:
    """Words; where words are not separated by spaces, characters, a run of Latin letters or digits counting
    as one ("2000年" is not three zeros in a row, nor "www." three w's)."""
    if lang in UNSPACED:
        return re.findall(r"[A-Za-z0-9]+|\S", text)
    return text.split()


def loops(text: str, lang: str) -> bool:
    """Whether some n-gram (n <= 4) of words (characters for zh/ja) repeats 3 or more times in a row."""
    units_ = units(text, lang)
    for n in range(1, MAX_N + 1):
        for i in range(len(units_) - TIMES * n + 1):
            gram = units_[i:i + n]
            if all(units_[i + t * n:i + (t + 1) * n] == gram for t in range(1, TIMES)):
                return True
    return False


def degenerate(text: str, hit_limit: bool, lang: str | None) -> bool:
    """`lang` None: the task's answers repeat units by design (POS tags in a list), only the limit counts."""
    return hit_limit or (lang is not None and loops(text, lang))
