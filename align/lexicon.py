"""Bilingual word lexicons for PreTTY's dictionary prior: induced from the budget's own parallel pairs by
Dice co-occurrence, or read from a dictionary file (TSV or FreeDict TEI).

Words are Unicode `\\w+` runs, matched lowercased. Chinese and Japanese have no spaces: a run of ideographs
gives every substring of up to three characters as a word (most words there are one to three characters long,
and Dice picks whichever tracks the source word best), a katakana run (a name, a loanword) is one word, and
hiragana (particles, inflections) is skipped, since attached to a word it gives pieces like の息子.
"""
from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections import Counter, defaultdict
from dataclasses import dataclass
from itertools import product
from pathlib import Path

from core.errors import DataMissing, UserError

_HIRAGANA = "\u3040-\u309f"
_KATAKANA = "\u30a0-\u30ff"
_HAN = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_CJK = _HIRAGANA + _KATAKANA + _HAN
_WORD = re.compile(rf"(?P<hiragana>[{_HIRAGANA}]+)|(?P<han>[{_HAN}]+)|[{_KATAKANA}]+|[^\W{_CJK}]+")
_CJK_CHAR = re.compile(f"[{_CJK}]")
_MAX_NGRAM = 3   # 耶和华 (Jehovah), 以色列 (Israel): transliterated names are often three characters

# English function words, with the King James Bible's archaic ones (the bundled data is the KJV): a prior made
# of the translation of "the" or "unto" says nothing about the sentence.
ENGLISH_STOPWORDS = frozenset("""
a about above after again against all also am an and any are as at be because been before being below between
both but by can could did do does doing down during each even few for from further had has have having he her
here hers herself him himself his how i if in into is it its itself just may me might more most must my
myself no nor not now o of off on once only or other our ours ourselves out over own same shall
she should so some such than that the their theirs them themselves then there these they this those through to
too under until up upon very was we were what when where which while who whom why will with would yea yet you
your yours yourself yourselves
art doth hast hath shalt thee thereof therefore thine thou thus thy unto wherefore ye
""".split())


def stopwords_for(lang: str) -> frozenset[str]:
    """Source words a prior skips; only English has a list, other sources have their first translatable word
    used."""
    return ENGLISH_STOPWORDS if lang == "en" else frozenset()


def words(text: str) -> list[tuple[int, int, str]]:
    """(start, end, lowercased word) in text order, longer first at the same start."""
    out = []
    for m in _WORD.finditer(text):
        run = m.group()
        if m.lastgroup == "hiragana":
            continue
        if m.lastgroup != "han":
            out.append((m.start(), m.end(), run.lower()))
            continue
        for i in range(len(run)):
            for n in range(min(_MAX_NGRAM, len(run) - i), 0, -1):
                out.append((m.start() + i, m.start() + i + n, run[i:i + n]))
    return out


@dataclass
class Lexicon:
    entries: dict[str, str]   # lowercased source word -> target word as it is usually written
    stopwords: frozenset[str] = ENGLISH_STOPWORDS

    def __len__(self) -> int:
        return len(self.entries)

    def translate(self, word: str) -> str | None:
        return self.entries.get(word.lower())

    def first_content_translation(self, src_sentence: str, n_words: int = 1) -> str:
        """The translations of the sentence's first n translatable non-stopwords, in source order
        (a repeated translation counts once); "" when there is none, so the base model decodes alone."""
        found: list[str] = []
        covered = 0   # a translated CJK n-gram covers its characters
        for start, end, word in words(src_sentence):
            if len(found) == n_words:
                break
            if start < covered or word in self.stopwords:
                continue
            target = self.entries.get(word)
            if target is not None:
                covered = end
                if target not in found:
                    found.append(target)
        return _join(found)


def _join(targets: list[str]) -> str:
    """Words joined by spaces, except between two CJK words: those scripts write none."""
    text = ""
    for t in targets:
        if text and not (_CJK_CHAR.match(text[-1]) and _CJK_CHAR.match(t)):
            text += " "
        text += t
    return text


def induce(pairs: list[tuple[str, str]], min_count: int = 2, min_dice: float = 0.3,
           stopwords: frozenset[str] = ENGLISH_STOPWORDS) -> Lexicon:
    """Each source word's best target by the Dice coefficient 2·c(s,t)/(c(s)+c(t)) over sentence-level
    co-occurrence, if they co-occur in at least `min_count` pairs and score at least `min_dice`.
    Ties go to more co-occurrences, then the longer word (a CJK n-gram over its parts), then alphabetical."""
    src_sets = [{w for _, _, w in words(s)} for s, _ in pairs]
    tgt_sets = [{w for _, _, w in words(t)} for _, t in pairs]
    c_src = Counter(w for ws in src_sets for w in ws)
    c_tgt = Counter(w for ws in tgt_sets for w in ws)
    # Words seen fewer than min_count times cannot reach min_count co-occurrences: skipping them early keeps
    # the pair count, the cost that grows fastest, small.
    frequent_src = {w for w, c in c_src.items() if c >= min_count}
    frequent_tgt = {w for w, c in c_tgt.items() if c >= min_count}
    co: Counter[tuple[str, str]] = Counter()
    for s, t in zip(src_sets, tgt_sets):
        co.update(product(s & frequent_src, t & frequent_tgt))
    best: dict[str, tuple] = {}
    for (s, t), c in co.items():
        dice = 2 * c / (c_src[s] + c_tgt[t])
        if c < min_count or dice < min_dice:
            continue
        key = (-dice, -c, -len(t), t)
        if s not in best or key < best[s]:
            best[s] = key
    surface = _surface_forms(t for _, t in pairs)
    return Lexicon({s: surface.get(key[3], key[3]) for s, key in sorted(best.items())}, stopwords)


def _surface_forms(texts) -> dict[str, str]:
    """Lowercased word -> its most frequent spelling (German nouns keep their capital), first seen on ties.
    CJK characters and bigrams are absent: they have no case."""
    forms: defaultdict[str, Counter] = defaultdict(Counter)
    for text in texts:
        for m in _WORD.finditer(text):
            forms[m.group().lower()][m.group()] += 1
    return {w: f.most_common(1)[0][0] for w, f in forms.items()}


def read_dictionary(path: str | Path, stopwords: frozenset[str] = ENGLISH_STOPWORDS) -> Lexicon:
    """A lexicon from a dictionary file: FreeDict TEI (`.tei`, `.xml`) or else `source<TAB>target` lines,
    blank lines and `#` comments skipped. A word listed twice keeps its first translation, the one
    dictionaries list first."""
    path = Path(path)
    if not path.is_file():
        raise DataMissing(f"{path}: no such dictionary file")
    entries: dict[str, str] = {}
    for src, tgt in _read_tei(path) if path.suffix in (".tei", ".xml") else _read_tsv(path):
        entries.setdefault(src.lower(), tgt)
    if not entries:
        raise UserError(f"{path}: no dictionary entries")
    return Lexicon(entries, stopwords)


def _read_tsv(path: Path) -> list[tuple[str, str]]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as e:
        raise UserError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    pairs = []
    for n, line in enumerate(lines, 1):
        if not line.strip() or line.startswith("#"):
            continue
        fields = [f.strip() for f in line.split("\t")]
        if len(fields) != 2 or not all(fields):
            raise UserError(f"{path}:{n}: expected 'source<TAB>target', got {line[:80]!r}")
        pairs.append((fields[0], fields[1]))
    return pairs


def _read_tei(path: Path) -> list[tuple[str, str]]:
    """<entry><form><orth>src</orth></form> ... <cit type="trans"><quote>tgt</quote></cit>, in or out of the
    TEI namespace; entries without both (cross-references) are skipped."""
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as e:
        raise UserError(f"{path}:{e.position[0]}: malformed XML ({e})") from None
    pairs = []
    for entry in root.iterfind(".//{*}entry"):
        orth = entry.findtext(".//{*}form/{*}orth", "").strip()
        quote = entry.findtext(".//{*}cit[@type='trans']/{*}quote", "").strip()
        if orth and quote:
            pairs.append((orth, quote))
    return pairs
