"""CLiKA's fictional knowledge, for the conductivity level: 400 invented places on 20 invented continents.

`fictional/train/<X>.json` (JSON lines despite the name) holds English QA for every place, X-language QA for the
"type 0" places only, and X -> English translations of every name, each fact in about ten paraphrases. The tests:
`test/target/test{EN,X}.jsonl` (one question per place, answers tagged `[[continent:…]][[city:…]][[type:0|1]]`,
the same places line by line) and `test/Translate/translate<X>.jsonl` (English -> X names).

A reduced protocol for small machines keeps `places` of them (half of each type) and `paraphrases` rows per fact.
"""
from __future__ import annotations

import random
import re
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from core.data.knowledge import json_lines
from core.errors import DataMissing, UserError
from core.languages import language

LANGS = ("ar", "de", "fr", "he", "it", "ja", "pl", "ru", "zh")   # CLiKA's target languages (English is the source)
_TAG = re.compile(r"\[\[(continent|city|type):([^\]]*)\]\]")


@dataclass(frozen=True)
class Place:
    index: int         # its question's position in the test files
    en: str            # English name
    x: str             # name in the target language
    type: int          # 0: stated in both languages in training; 1: stated in English only
    continent_en: str
    continent_x: str


@dataclass(frozen=True)
class TestItem:
    id: str
    subset: str        # translation | en_type0 | en_type1 | x_type0 | x_type1
    question: str
    expected: str      # correct when the answer contains it (case-insensitive): a continent or a name


def _jsonl(path: Path):
    for where, row in json_lines(path, "CLiKA fictional file (data directory with clika/fictional/)"):
        try:
            yield where, {k: str(row[k]) for k in ("prompt", "input", "answer")}
        except (KeyError, TypeError) as e:
            raise UserError(f"{where}: expected prompt, input, answer ({e})") from None


def _tags(where: str, answer: str) -> dict[str, str]:
    tags = dict(_TAG.findall(answer))
    if set(tags) != {"continent", "city", "type"} or tags["type"] not in ("0", "1"):
        raise UserError(f"{where}: answer lacks the [[continent:…]][[city:…]][[type:0|1]] tags")
    return tags


def places(root: Path, lang: str) -> list[Place]:
    """Every place, from the English and X test files (the same places, line by line)."""
    en = list(_jsonl(root / "test" / "target" / "testEN.jsonl"))
    x = list(_jsonl(root / "test" / "target" / f"test{lang.upper()}.jsonl"))
    if len(en) != len(x):
        raise UserError(f"{root}/test/target: testEN has {len(en)} questions, test{lang.upper()} {len(x)}; "
                        "they must list the same places line by line")
    out = []
    for i, ((where_en, row_en), (where_x, row_x)) in enumerate(zip(en, x)):
        t_en, t_x = _tags(where_en, row_en["answer"]), _tags(where_x, row_x["answer"])
        if t_en["type"] != t_x["type"]:
            raise UserError(f"{where_x}: type {t_x['type']} differs from {where_en}'s {t_en['type']}")
        out.append(Place(i, t_en["city"], t_x["city"], int(t_en["type"]), t_en["continent"], t_x["continent"]))
    return out


def choose(all_places: list[Place], n: int | None, seed: int) -> list[Place]:
    """n places, half of each type (all when n is None), in file order."""
    if n is None:
        return all_places
    by_type = {t: [p for p in all_places if p.type == t] for t in (0, 1)}
    half = n // 2
    if n % 2 or half > min(len(v) for v in by_type.values()):
        raise UserError(f"places: {n} must be even and at most {2 * min(len(v) for v in by_type.values())} "
                        "(half type 0, half type 1)")
    rng = random.Random(seed)
    kept = {p for t in (0, 1) for p in rng.sample(by_type[t], half)}
    return [p for p in all_places if p in kept]


def _entity(text: str, names: list[str]) -> str | None:
    """The longest name the text mentions ('Crimson Cradle Peak' before 'Crimson Cradle')."""
    return next((n for n in names if n in text), None)


def _question_language(lang: str):
    """Whether a question is asked in English or in X, from its wording (place names removed): lingua, restricted
    to the two languages. The answers cannot tell: some continents are spelled alike in both."""
    from lingua import Language, LanguageDetectorBuilder

    detector = LanguageDetectorBuilder.from_languages(Language.ENGLISH, getattr(Language, language(lang).lingua)).build()
    return lambda text: "en" if detector.detect_language_of(text) == Language.ENGLISH else "x"


def training_rows(root: Path, lang: str, chosen: list[Place], paraphrases: int | None) -> list[dict]:
    """The training file's rows about the chosen places and their continents, at most `paraphrases` per fact.
    A row's fact: for a translation (it has an input), the name translated; for a question, the place it names and
    the language it is asked in."""
    continents = {p.continent_en for p in chosen}
    names = sorted({n for p in chosen for n in (p.en, p.x)}, key=len, reverse=True)
    of_place = {n: p for p in chosen for n in (p.en, p.x)}
    asked_in = _question_language(lang)
    kept, count = [], defaultdict(int)
    for where, r in _jsonl(root / "train" / f"{lang.upper()}.json"):
        if r["input"]:
            name = r["answer"].strip()
            if name not in of_place and name not in continents:
                continue
            fact = ("translation", name)
        else:
            place = of_place.get(_entity(r["prompt"], names) or "")
            if place is None:
                continue
            fact = (asked_in(r["prompt"].replace(place.x, " ").replace(place.en, " ")), place.en)
        count[fact] += 1
        if paraphrases is None or count[fact] <= paraphrases:
            kept.append({"id": where.rsplit("/", 1)[-1], "fact": f"{fact[0]}:{fact[1]}",
                         "instruction": r["prompt"], "input": r["input"], "answer": r["answer"]})
    return kept


def test_items(root: Path, lang: str, chosen: list[Place]) -> list[TestItem]:
    """Gate subsets (translation, en_type0, en_type1, x_type0) and the measured one (x_type1), for the chosen places."""
    items = []
    indices = {p.index for p in chosen}
    for code, subset_lang in (("EN", "en"), (lang.upper(), "x")):
        for i, (where, r) in enumerate(_jsonl(root / "test" / "target" / f"test{code}.jsonl")):
            if i not in indices:
                continue
            tags = _tags(where, r["answer"])
            items.append(TestItem(where.rsplit("/", 1)[-1], f"{subset_lang}_type{tags['type']}",
                                  r["prompt"], tags["continent"]))
    wanted = {p.en for p in chosen} | {p.continent_en for p in chosen}
    for where, r in _jsonl(root / "test" / "Translate" / f"translate{lang.upper()}.jsonl"):
        if r["input"].strip() in wanted:
            items.append(TestItem(where.rsplit("/", 1)[-1], "translation", f"{r['prompt']}\n{r['input']}",
                                  r["answer"].strip()))
    return items


def load(data_dir: Path | None, lang: str, n_places: int | None, paraphrases: int | None,
         seed: int) -> tuple[list[dict], list[TestItem], dict]:
    """(training rows, test items, manifest entry) of language `lang`."""
    if data_dir is None:
        raise DataMissing("conductivity needs the data directory (data.dir or YARN_DATA_DIR) with clika/fictional/")
    root = data_dir / "clika" / "fictional"
    chosen = choose(places(root, lang), n_places, seed)
    rows = training_rows(root, lang, chosen, paraphrases)
    items = test_items(root, lang, chosen)
    kinds = defaultdict(int)
    for r in rows:
        kinds[r["fact"].split(":", 1)[0]] += 1
    subsets = defaultdict(int)
    for i in items:
        subsets[i.subset] += 1
    return rows, items, {"places": len(chosen), "paraphrases": paraphrases or "all", "train_rows": dict(kinds),
                         "test_items": dict(subsets)}
