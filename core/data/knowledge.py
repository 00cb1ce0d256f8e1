"""Multiple-choice knowledge questions in many languages, for CLiKA's performance and consistency levels.

Sets: `x_geo`, `x_name`, `x_csqa` and `x_copa` (the CLiKA test sets, from the data directory) and `facts`
(capital, continent and currency of each country, built from PyPI `world-countries` and extended through CLDR
with `babel`, so it runs anywhere). A question's id is the same in every language: consistency compares the
same items.

x_csqa items whose gold option's text equals another option's (after strip and casefold) in any language of
the data directory are dropped in every language: which option the model "chose" is ambiguous there, and
scoring by index and by text disagree on them (49 of the 1,000 upstream items; en 7, de 15, ...).
``Question`` lives in ``core.data.types``; callers may keep importing it from here.
"""
from __future__ import annotations

import functools
import json
import random
from pathlib import Path
from typing import Callable

from core.data import facts
from core.data.types import Question
from core.errors import DataMissing, UserError

# COPA asks for the cause or the effect of its premise; the frame is English in every language, as the
# prompt's
_COPA_QUESTION = {"cause": "What was the cause?", "effect": "What happened as a result?"}


def load(name: str, lang: str, data_dir: Path | None, seed: int = 0) -> list[Question]:
    if name not in _READERS:
        raise UserError(f"unknown knowledge set {name!r} (known: {', '.join(SETS)})")
    return _READERS[name](lang, data_dir, seed)


def _clika(name: str, data_dir: Path | None) -> Path:
    """The set's folder in the data directory."""
    if data_dir is None:
        raise DataMissing(f"knowledge set {name!r} needs the data directory (data.dir or YARN_DATA_DIR) "
                          "with clika/")
    return data_dir / "clika" / name


def _x_geo(lang: str, data_dir: Path | None, seed: int) -> list[Question]:
    return _four_options("x_geo", _clika("x_geo", data_dir) / lang / f"{lang}_geo_data.jsonl")


def _x_name(lang: str, data_dir: Path | None, seed: int) -> list[Question]:
    return _four_options("x_name", _clika("x_name", data_dir) / lang / f"{lang}_name_data_generate.jsonl")


def _facts(lang: str, data_dir: Path | None, seed: int) -> list[Question]:
    return facts.questions(lang, seed)   # built from packages: no data directory


def json_lines(path: Path, what: str = "knowledge test file"):
    """(file:line, object) per non-blank line; a missing file is DataMissing, a malformed line names
    itself."""
    if not path.is_file():
        raise DataMissing(f"{path}: {what} not found")
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if line.strip():
                try:
                    yield f"{path}:{lineno}", json.loads(line)
                except json.JSONDecodeError as e:
                    raise UserError(f"{path}:{lineno}: invalid JSON ({e.msg})") from None


def _four_options(name: str, path: Path) -> list[Question]:
    """x_geo and x_name: questions, answers (4 options), label."""
    out = []
    for where, row in json_lines(path):
        try:
            out.append(Question(f"{name}:{row['id']}", row["questions"], tuple(row["answers"]),
                                int(row["label"])))
        except (KeyError, TypeError, ValueError) as e:
            raise UserError(f"{where}: expected questions, answers, label ({e})") from None
    return out


def _x_csqa(lang: str, data_dir: Path | None, seed: int) -> list[Question]:
    root = _clika("x_csqa", data_dir)
    # en/validation.jsonl; the translations sit in DE_trans/, ar_trans/ ... (mixed case upstream)
    folder = root / "en" if lang == "en" else next(
        (d for d in sorted(root.glob("*_trans")) if d.name.split("_")[0].lower() == lang),
        root / f"{lang}_trans")
    ambiguous = _ambiguous_x_csqa(root)
    return [q for q in _x_csqa_file(folder / "validation.jsonl") if q.id not in ambiguous]


def gold_is_ambiguous(q: Question) -> bool:
    """The gold option's text is also another option's: an answer by text cannot tell them apart."""
    gold = q.options[q.label].strip().casefold()
    return any(i != q.label and o.strip().casefold() == gold for i, o in enumerate(q.options))


@functools.lru_cache(maxsize=4)
def _ambiguous_x_csqa(root: Path) -> frozenset[str]:
    """Ids ambiguous in any language present: the pool does not depend on the languages a config asks for."""
    files = [root / "en" / "validation.jsonl"] + sorted(root.glob("*_trans/validation.jsonl"))
    return frozenset(q.id for path in files if path.is_file()
                     for q in _x_csqa_file(path) if gold_is_ambiguous(q))


def _x_csqa_file(path: Path) -> list[Question]:
    out = []
    for where, row in json_lines(path):
        try:
            labels = row["question"]["choices"]["label"]
            out.append(Question(f"x_csqa:{row['id']}", row["question"]["stem"],
                                tuple(row["question"]["choices"]["text"]), labels.index(row["answerKey"])))
        except (KeyError, TypeError, ValueError) as e:
            raise UserError(f"{where}: expected question.stem, question.choices, answerKey ({e})") from None
    return out


def _x_copa(lang: str, data_dir: Path | None, seed: int) -> list[Question]:
    root = _clika("x_copa", data_dir)
    # folders are en, it, zh ... and DE, FR, JA ... upstream
    folder = next((d for d in sorted(root.iterdir()) if d.name.lower() == lang), root / lang) \
        if root.is_dir() else root / lang
    out = []
    for where, row in json_lines(folder / "test.jsonl"):
        try:
            out.append(Question(f"x_copa:{row['id']}", f"{row['premise']} {_COPA_QUESTION[row['question']]}",
                                (row["choice1"], row["choice2"]), int(row["label"])))
        except (KeyError, TypeError, ValueError) as e:
            raise UserError(f"{where}: expected premise, question (cause|effect), choice1, choice2, label "
                            f"({e})") from None
    return out


# set name -> reader(lang, data_dir, seed); the seed only matters to facts, whose distractors it draws
_READERS: dict[str, Callable[[str, Path | None, int], list[Question]]] = {
    "x_geo": _x_geo, "x_name": _x_name, "x_csqa": _x_csqa, "x_copa": _x_copa, "facts": _facts}
SETS = tuple(_READERS)


def select_shared(by_lang: dict[str, list[Question]], n: int, seed: int,
                  what: str) -> dict[str, list[Question]]:
    """The same n item ids in every language (those present in all), chosen by the seed."""
    common = set.intersection(*({q.id for q in qs} for qs in by_lang.values()))
    if n > len(common):
        raise UserError(f"data.test_size: {n} exceeds the {len(common)} {what} items present in every "
                        "language")
    chosen = set(random.Random(seed).sample(sorted(common), n))
    return {lang: [q for q in qs if q.id in chosen] for lang, qs in by_lang.items()}


def select_shared_splits(by_lang: dict[str, list[Question]], n: int, seed: int, what: str,
                         dev_n: int | None = None
                         ) -> tuple[dict[str, list[Question]], dict[str, list[Question]]]:
    """(test, dev): the test items are exactly `select_shared`'s; dev is a seeded slice of the remaining
    shared ids (the same ids in every language, none of them a test item), dev_n (default n) of them or as
    many as remain."""
    test = select_shared(by_lang, n, seed, what)
    common = set.intersection(*({q.id for q in qs} for qs in by_lang.values()))
    rest = sorted(common - {q.id for q in next(iter(test.values()))})
    chosen = set(random.Random(f"{seed}:dev").sample(rest, min(n if dev_n is None else dev_n, len(rest))))
    return test, {lang: [q for q in qs if q.id in chosen] for lang, qs in by_lang.items()}
