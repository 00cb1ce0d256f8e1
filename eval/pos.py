"""Part-of-speech tagging quality: token-level UPOS accuracy, outputs that break the format counted wrong.

Two answer formats (`core.prompts.tagging_completion`); a record's references tell which (`gold_of`).

**pairs** (default): each gold word copied with its tag, " The/DET cat/NOUN sat/VERB". The words tie every tag
to its word, so a lost or doubled word costs the words it shifts, not the whole sentence:
- strict `upos_accuracy`: the i-th output pair against the i-th gold word; right only when it holds that word
  and its tag. One pair per position, chosen without looking at tags, so nothing gains by writing extra
  pairs or several tags for a word.
- lenient `aligned_accuracy`: output pairs aligned to the gold words by their words alone (difflib's matching
  blocks, monotone, each word at most once); right when the aligned pair holds the gold tag. It recovers
  after a skipped or doubled word.
- `word_match_rate`: the share of gold positions whose pair holds the gold word (how well the model copies);
  misaligned: the pairs' words are not exactly the gold words; unparseable: no pair with a UPOS tag at all.

**list** (the earlier format): one line of UPOS tags, " DET NOUN VERB". Parsing forgives what cannot be
ambiguous: letter case ("noun") and punctuation or quotes stuck to a tag or standing alone ("PUNCT." at the
end, "DET | NOUN" echoing the words' separator). unparseable: no tag, or a token that is not a UPOS tag;
misaligned: only UPOS tags, but not one per word. A failed item scores 0: tags cannot be matched to words
without guessing where one went missing.

In both, `position_accuracy` matches the i-th output tag with the i-th gold tag whatever the count or the
words (missing or non-tag tokens are wrong): a lenient diagnostic comparable across formats.
"""
from __future__ import annotations

from difflib import SequenceMatcher
from typing import Sequence

from core.data.ud import UPOS

_EDGE = ".,;:!?'\"`|()[]"


def _tag(token: str) -> str:
    return token.strip(_EDGE).upper()


def _tags(output: str) -> list[str] | None:
    """The tags in ``output``, or None if it is unparseable."""
    tokens = [_tag(t) for t in output.split()]
    tags = [t for t in tokens if t]
    if not tags or any(t not in UPOS for t in tags):
        return None
    return tags


def parse_pairs(output: str) -> list[tuple[str, str]]:
    """The (word, tag) pairs of a "word/TAG word/TAG" answer, in order. Each space-separated token holding a
    "/" ends a pair, its tag being what follows the token's last "/" (UD words hold "/" - "and/or", "//",
    dates - but no tag does); tokens without one belong to the next pair's word ("25 000/NUM"); text after the
    last pair is dropped. Tags are read as a list answer's are (case, stuck punctuation)."""
    pairs, pending = [], []
    for token in output.split():
        if "/" not in token:
            pending.append(token)
            continue
        word, _, tag = token.rpartition("/")
        pairs.append((" ".join(p for p in [*pending, word] if p), _tag(tag)))
        pending = []
    return pairs


def _word(word: str) -> str:
    return " ".join(word.split())


def gold_of(reference: str) -> tuple[list[str] | None, list[str]]:
    """(gold words, gold tags) of a record's reference: a pairs answer (words and tags), or a list of tags (no
    words: format list). A tag never holds a "/" and every pair does."""
    if "/" not in reference:
        return None, reference.split()
    pairs = parse_pairs(reference)
    return [w for w, _ in pairs], [t for _, t in pairs]


def score_references(outputs: list[str], references: list[str]) -> dict:
    """`score_tagging` with the gold read from the references (the report has only the records)."""
    gold = [gold_of(r) for r in references]
    words = [w for w, _ in gold]
    return score_tagging(outputs, [t for _, t in gold], None if any(w is None for w in words) else words)


def score_tagging(outputs: list[str], gold: list[Sequence[str]],
                  words: list[Sequence[str]] | None = None) -> dict:
    """Micro-averaged UPOS accuracy over all gold tokens, the rates of failed outputs (invalid = unparseable +
    misaligned), and per-item accuracy / invalid flag for bootstrap CIs and error analysis. Given the gold
    ``words``, outputs are read as pairs, else as lists of tags."""
    if len(outputs) != len(gold) or (words is not None and len(words) != len(gold)):
        raise ValueError(f"{len(outputs)} outputs but {len(gold)} gold tag sequences")
    if not gold or any(not g for g in gold):
        raise ValueError("no sentences to score, or a sentence without words")
    items = [_pairs_item(o, g, w) for o, g, w in zip(outputs, gold, words)] if words is not None \
        else [_list_item(o, g) for o, g in zip(outputs, gold)]
    n = sum(len(g) for g in gold)

    def total(key: str) -> float:
        return sum(item[key] for item in items)

    invalid = [item["unparseable"] or item["misaligned"] for item in items]
    metrics = {"upos_accuracy": total("hits") / n, "invalid_rate": sum(invalid) / len(gold),
               "unparseable_rate": total("unparseable") / len(gold),
               "misaligned_rate": total("misaligned") / len(gold),
               "position_accuracy": total("position_hits") / n}
    if words is not None:
        metrics |= {"aligned_accuracy": total("aligned_hits") / n, "word_match_rate": total("word_hits") / n}
    return {"metrics": metrics,
            "per_item": {"accuracy": [item["hits"] / len(g) for item, g in zip(items, gold)],
                         "invalid": invalid}}


def _list_item(output: str, gold: Sequence[str]) -> dict:
    tags = _tags(output)
    aligned = tags is not None and len(tags) == len(gold)
    return {"hits": sum(t == u for t, u in zip(tags, gold)) if aligned else 0,
            "position_hits": sum(_tag(t) == u for t, u in zip(output.split(), gold)),
            "unparseable": tags is None, "misaligned": tags is not None and not aligned}


def _pairs_item(output: str, gold: Sequence[str], words: Sequence[str]) -> dict:
    pairs = parse_pairs(output)
    said = [_word(w) for w, _ in pairs]
    gold_words = [_word(w) for w in words]
    same_word = [s == g for s, g in zip(said, gold_words)]
    aligned = 0
    for block in SequenceMatcher(None, said, gold_words, autojunk=False).get_matching_blocks():
        aligned += sum(pairs[block.a + j][1] == gold[block.b + j] for j in range(block.size))
    return {"hits": sum(s and p[1] == g for s, p, g in zip(same_word, pairs, gold)),
            "position_hits": sum(p[1] == g for p, g in zip(pairs, gold)),
            "aligned_hits": aligned, "word_hits": sum(same_word),
            "unparseable": not any(t in UPOS for _, t in pairs), "misaligned": said != gold_words}


class TagPairs:
    """Counts the word/TAG pairs of a growing id sequence: the unit of a PreTTY prior's k for a pairs answer
    (k tags, with the words copied around them). Fed the whole sequence after each new id, as
    `core.pieces.TextPieces` (same interface: `ends`, the sequence length where each pair ends). A pair ends
    with its tag: as soon as the text after its last "/" is a UPOS tag (no tag begins another one), or, for a
    tag outside UPOS, before the piece that brings the next whitespace."""

    def __init__(self, tok):
        self.tok, self.ends = tok, []

    @staticmethod
    def units_of(text: str) -> list[str]:
        """The units of a whole answer, its tags: what a prior source counts without a tokenizer."""
        return [tag for _, tag in parse_pairs(text)]

    def add(self, ids) -> None:
        text = self.tok.decode(ids, skip_special_tokens=True)
        if text.endswith("\ufffd"):
            return
        tokens = text.split()
        closed = [i < len(tokens) - 1 or text[-1:].isspace() for i in range(len(tokens))]
        ended = [c or _tag(t.rpartition("/")[2]) in UPOS for t, c in zip(tokens, closed) if "/" in t]
        while len(self.ends) < sum(ended):
            # the pair just ended is the last token (its tag completed), or this piece's whitespace closed it
            last = tokens and "/" in tokens[-1] and not closed[-1]
            self.ends.append(len(ids) if last else len(ids) - 1)
