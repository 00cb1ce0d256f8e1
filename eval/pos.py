"""Part-of-speech tagging quality: token-level UPOS accuracy, with outputs that break the format counted wrong.

An output is one line of space-separated UPOS tags, one per gold word (``core.prompts.tagging_completion``).
Parsing forgives what cannot be ambiguous: letter case ("noun") and punctuation or quotes stuck to a tag or
standing alone ("PUNCT." at the end, "DET | NOUN" echoing the words' separator). Two ways to fail, told apart
because they call for different fixes:
- unparseable: no tag at all, or some token is not a UPOS tag (the model did not follow the format);
- misaligned: only UPOS tags, but not one per word (it followed the format but lost count).
A failed item scores 0: tags cannot be matched to words without guessing where one went missing.
Beside that strict score, `position_accuracy` matches the i-th output token with the i-th gold tag whatever the
count (missing or non-tag tokens are wrong): a lenient diagnostic that still moves when a weak model loses count
on every sentence, so arms can be told apart where the strict score is 0 for all of them.
"""
from __future__ import annotations

from typing import Sequence

from core.data.ud import UPOS

_EDGE = ".,;:!?'\"`|()[]"


def _tags(output: str) -> list[str] | None:
    """The tags in ``output``, or None if it is unparseable."""
    tokens = [t.strip(_EDGE).upper() for t in output.split()]
    tags = [t for t in tokens if t]
    if not tags or any(t not in UPOS for t in tags):
        return None
    return tags


def parse_tags(output: str, n: int) -> list[str] | None:
    """The ``n`` UPOS tags in ``output``; None if it is unparseable or holds another number of tags."""
    tags = _tags(output)
    return tags if tags is not None and len(tags) == n else None


def score_tagging(outputs: list[str], gold: list[Sequence[str]]) -> dict:
    """Micro-averaged UPOS accuracy over all gold tokens, the rates of failed outputs (invalid = unparseable +
    misaligned), and per-item accuracy / invalid flag for bootstrap CIs and error analysis."""
    if len(outputs) != len(gold):
        raise ValueError(f"{len(outputs)} outputs but {len(gold)} gold tag sequences")
    if not gold or any(not g for g in gold):
        raise ValueError("no sentences to score, or a sentence without words")
    correct, lenient, accuracy, unparseable, misaligned = 0, 0, [], [], []
    for output, g in zip(outputs, gold):
        lenient += sum(t.strip(_EDGE).upper() == u for t, u in zip(output.split(), g))
        tags = _tags(output)
        unparseable.append(tags is None)
        misaligned.append(tags is not None and len(tags) != len(g))
        hits = sum(t == u for t, u in zip(tags, g)) if tags is not None and len(tags) == len(g) else 0
        correct += hits
        accuracy.append(hits / len(g))
    invalid = [u or m for u, m in zip(unparseable, misaligned)]
    return {
        "metrics": {
            "upos_accuracy": correct / sum(len(g) for g in gold),
            "invalid_rate": sum(invalid) / len(gold),
            "unparseable_rate": sum(unparseable) / len(gold),
            "misaligned_rate": sum(misaligned) / len(gold),
            "position_accuracy": lenient / sum(len(g) for g in gold),
        },
        "per_item": {"accuracy": accuracy, "invalid": invalid},
    }
