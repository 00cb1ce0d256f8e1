"""The records the data loaders return. They live here, apart from the loaders and their config models, so
that a loader, a budget or a test can name them without importing another loader: no module of core.data
imports one that imports it back (tests/test_data.py checks).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Split = Literal["train", "dev", "test"]


@dataclass(frozen=True)
class Pair:
    # stable across runs and machines: bible:8.1.1, pud:n01001011, file:data/x.tsv:17,
    # hub:wmt19/de-en:validation:5
    id: str
    src: str
    tgt: str


@dataclass(frozen=True)
class TaggedSentence:
    id: str                  # ewt:<sent_id> or pud:<sent_id>
    words: tuple[str, ...]   # syntactic words; a few hold a space (French/Spanish/Russian "25 000")
    tags: tuple[str, ...]    # one UPOS tag per word


@dataclass(frozen=True)
class Question:
    id: str   # the same in every language: consistency compares the same items
    question: str
    options: tuple[str, ...]
    label: int


@dataclass(frozen=True)
class Document:
    id: str     # stable: bible:s:1.3 (translation, book.chapter), gettext:apt.mo, text:de.txt:12, hub:name:5
    text: str


@dataclass(frozen=True)
class Place:
    """A CLiKA fictional place (core.data.fictional)."""
    index: int         # its question's position in the test files
    en: str            # English name
    x: str             # name in the target language
    type: int          # 0: stated in both languages in training; 1: stated in English only
    continent_en: str
    continent_x: str


@dataclass(frozen=True)
class TestItem:
    """A CLiKA fictional test question (core.data.fictional)."""
    id: str
    subset: str        # translation | en_type0 | en_type1 | x_type0 | x_type1
    question: str
    expected: str      # correct when the answer contains it (case-insensitive): a continent or a name
