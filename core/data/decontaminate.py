"""Pretraining text without test data (fairness rule 9): a document that shares a word 13-gram with any test
or dev text (in Chinese and Japanese, written without spaces, a character 50-gram) is dropped, and every drop
is counted so that the manifest says what was removed.

The n-grams of the held texts are hashed into one dict (hash -> the row that holds it); each document is
scanned once and stops at its first hit, so millions of characters of gettext or man pages cost seconds.
Python's str hash is salted per process, which is harmless: the index never outlives the process.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Iterable, Iterator

from core.data.types import Document

WORD_N, CHAR_N = 13, 50
# A held text shorter than an n-gram is matched whole (most zh/ja test sentences are under 13 words, many
# under 50 characters); below these lengths a text ("Ja.", a name) is too common to decide anything: counted,
# not checked
MIN_WORDS, MIN_CHARS = 8, 20
CHAR_LANGS = frozenset({"zh", "ja"})
_WORD = re.compile(r"\w+")
_CJK = re.compile("[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")   # kana and ideographs
_EXAMPLES = 5


def _words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def _chars(text: str) -> str:
    return "".join(text.split())


def word_ngrams(text: str, n: int = WORD_N) -> Iterator[int]:
    words = _words(text)
    return (hash(tuple(words[i:i + n])) for i in range(len(words) - n + 1))


def char_ngrams(text: str, n: int = CHAR_N) -> Iterator[int]:
    chars = _chars(text)
    return (hash(chars[i:i + n]) for i in range(len(chars) - n + 1))


def held_texts(rows: Iterable[dict]) -> dict[str, str]:
    """text -> the first row holding it, over the test and dev rows: every row's source ("src": the sentence
    to translate, the question, the POS words) and its reference ("tgt"), except POS, whose target is tags."""
    texts: dict[str, str] = {}
    for row in rows:
        name = f"{row.get('task')} {row.get('direction')} {row['id']}"
        for side in ("src",) if row.get("task") == "pos" else ("src", "tgt"):
            if isinstance(row.get(side), str) and row[side].strip():
                texts.setdefault(row[side], name)
    return texts


@dataclass
class Index:
    # n -> n-gram hash -> held row; n is WORD_N / CHAR_N, or the whole length of a shorter held text
    words: dict[int, dict[int, str]] = field(default_factory=dict)
    chars: dict[int, dict[int, str]] = field(default_factory=dict)   # zh/ja text, whitespace removed
    texts: int = 0
    too_short: int = 0   # held texts under MIN_WORDS words (and MIN_CHARS CJK characters): not checked

    @classmethod
    def of(cls, rows: Iterable[dict]) -> "Index":
        index = cls()
        for text, name in held_texts(rows).items():
            index.texts += 1
            n = min(WORD_N, len(_words(text)))
            checked = n >= MIN_WORDS
            if checked:
                table = index.words.setdefault(n, {})
                for h in word_ngrams(text, n):
                    table.setdefault(h, name)
            # the row's language fields name a direction, not always the text's language
            if _CJK.search(text):
                n = min(CHAR_N, len(_chars(text)))
                if n >= MIN_CHARS:
                    checked = True
                    table = index.chars.setdefault(n, {})
                    for h in char_ngrams(text, n):
                        table.setdefault(h, name)
            index.too_short += not checked
        return index

    def hit(self, text: str, by_chars: bool) -> str | None:
        """The held row sharing an n-gram with ``text`` (or appearing in it whole), or None."""
        for n, table in self.words.items():
            hit = next((table[h] for h in word_ngrams(text, n) if h in table), None)
            if hit is not None:
                return hit
        for n, table in self.chars.items() if by_chars else ():
            hit = next((table[h] for h in char_ngrams(text, n) if h in table), None)
            if hit is not None:
                return hit
        return None


def decontaminate(docs_by_lang: dict[str, list[Document]], index: Index,
                  tokenizer) -> tuple[dict[str, list[Document]], dict]:
    """The documents without those that hit the index, and the record of what was dropped, per language."""
    kept, record = {}, {"word_ngram": WORD_N, "char_ngram": CHAR_N, "char_langs": sorted(CHAR_LANGS),
                        "held_texts": index.texts, "held_texts_too_short": index.too_short,
                        "min_words": MIN_WORDS, "min_chars": MIN_CHARS, "by_lang": {}}
    for lang, docs in docs_by_lang.items():
        kept[lang], dropped = [], []
        for doc in docs:
            hit = index.hit(doc.text, lang in CHAR_LANGS)
            if hit is None:
                kept[lang].append(doc)
            else:
                dropped.append((doc, hit))
        removed = tokenizer([d.text for d, _ in dropped], add_special_tokens=False).input_ids \
            if dropped else []
        record["by_lang"][lang] = {"documents_checked": len(docs), "hits": len(dropped),
                                   "tokens_removed": sum(map(len, removed)),
                                   "examples": [{"doc": d.id, "held": h} for d, h in dropped[:_EXAMPLES]]}
    return kept, record
