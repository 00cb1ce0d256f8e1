"""Counting an answer's pieces that carry text, so that the same k means the same amount of prior in every
language (fairness rule 8): Gemma writes " 这是一个" as ['▁', '这是一个'] and " 1984" as ['▁', '1', '9', ...],
so a bare '▁' would be a whole prior of k = 1 in Chinese and nothing of one in German."""
from __future__ import annotations


def _visible(text: str) -> int:
    return sum(not c.isspace() for c in text)


class TextPieces:
    """Counts the text-carrying pieces of a growing id sequence, fed the whole sequence after each new id.
    A piece carries text when the decoded sequence gains a visible (non-whitespace) character: a whitespace
    piece goes with the next one, and the byte pieces of one character count once, when the character is
    complete (an unfinished one decodes to a trailing U+FFFD)."""

    def __init__(self, tok):
        self.tok, self.ends, self._seen = tok, [], 0   # ends: the sequence length at which each piece ends

    def add(self, ids) -> None:
        text = self.tok.decode(ids, skip_special_tokens=True)
        if not text.endswith("\ufffd") and _visible(text) > self._seen:
            self.ends.append(len(ids))
            self._seen = _visible(text)


def text_piece_ends(tok, ids: list[int], k: int | None = None) -> list[int]:
    """The end (exclusive index) of each of the first k (default: all) text-carrying pieces of `ids`."""
    counter = TextPieces(tok)
    for j in range(1, len(ids) + 1):
        if k is not None and len(counter.ends) >= k:
            break
        counter.add(ids[:j])
    return counter.ends


def take_text_pieces(tok, ids: list[int], k: int) -> list[int]:
    """The ids of the first k pieces that carry text; all of `ids` when they hold fewer."""
    if k == 0:
        return []
    ends = text_piece_ends(tok, ids, k)
    return list(ids[:ends[-1]]) if len(ends) == k else list(ids)
