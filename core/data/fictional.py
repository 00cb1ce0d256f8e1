"""CLiKA's fictional knowledge, for the conductivity level: 400 invented places on 20 invented continents.

`fictional/train/<X>.json` (JSON lines despite the name) holds English QA for every place, X-language QA for
the "type 0" places only, and X -> English translations of every name, each fact in about ten paraphrases. The
tests: `test/target/test{EN,X}.jsonl` (one question per place, answers tagged
`[[continent:…]][[city:…]][[type:0|1]]`, the same places line by line) and
`test/Translate/translate<X>.jsonl` (English -> X names).

A reduced protocol for small machines keeps `places` of them (half of each type) and `paraphrases` rows per
fact.

1–4 X names per language belong to two places (de "Wirbeltal": Vortex Valley, type 0; Vortex Vale, type 1).
So a training question is matched to its place among all 400 by the longest whole name it mentions and, for
a shared name, by type and by the continent its answer gives; and an X question whose name two chosen places
on different continents share is left out of the test (the manifest's `dropped_ambiguous`).
``Place`` and ``TestItem`` live in ``core.data.types``; callers may keep importing them from here.
"""
from __future__ import annotations

import functools
import random
import re
from collections import defaultdict
from pathlib import Path

from lingua import Language, LanguageDetectorBuilder

from core.data.knowledge import json_lines
from core.data.types import Place, TestItem
from core.errors import DataMissing, UserError
from core.languages import language

# CLiKA's target languages (English is the source)
LANGS = ("ar", "de", "fr", "he", "it", "ja", "pl", "ru", "zh")
_TAG = re.compile(r"\[\[(continent|city|type):([^\]]*)\]\]")


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
        out.append(Place(i, t_en["city"], t_x["city"], int(t_en["type"]), t_en["continent"],
                         t_x["continent"]))
    return out


def choose(all_places: list[Place], n: int | None, seed: int) -> list[Place]:
    """n places, half of each type (all when n is None), in file order."""
    if n is None:
        return all_places
    by_type = {t: [p for p in all_places if p.type == t] for t in (0, 1)}
    half = n // 2
    if n % 2 or half > min(len(v) for v in by_type.values()):
        raise UserError(f"tasks.conductivity.places: {n} must be even and at most "
                        f"{2 * min(len(v) for v in by_type.values())} (half type 0, half type 1)")
    rng = random.Random(seed)
    kept = {p for t in (0, 1) for p in rng.sample(by_type[t], half)}
    return [p for p in all_places if p in kept]


_UNSPACED = re.compile(r"[\u2e80-\u9fff\uac00-\ud7af\uf900-\ufaff\uff00-\uffef]")   # CJK, kana, Hangul


def _one_word(a: str, b: str) -> bool:
    """Whether adjacent characters belong to one word: letters or digits of a script that spaces its words
    (in Chinese or Japanese a name ends wherever it ends). Arabic's tatweel joins a prefix to a name:
    لـرمال."""
    return all(c.isalnum() and c != "\u0640" and not _UNSPACED.match(c) for c in (a, b))


def _mentions(text: str, name: str) -> bool:
    """Whether the text names `name` as whole words ('Iridescent Isle' is not in 'Iridescent Isles')."""
    start = text.find(name)
    while start >= 0:
        end = start + len(name)
        joined_before = start > 0 and _one_word(text[start - 1], name[0])
        if not joined_before and not (end < len(text) and _one_word(name[-1], text[end])):
            return True
        start = text.find(name, start + 1)
    return False


def _place_of(prompt: str, answer: str, by_name: dict[str, list[Place]]) -> Place | None:
    """The place a question is about, among all places (chosen or not): the one of the longest name it
    mentions ('Crimson Cradle Peak', not 'Crimson Cradle'). Of two places that share the name (de
    'Wirbeltal': Vortex Valley and Vortex Vale), an X name fits only a type-0 one (only those are asked about
    in X), then the one the answer puts on its continent (zh's training file names continents unlike its
    tests, so there the type decides). None when no name or no single place fits."""
    name = next((n for n in by_name if n in prompt and _mentions(prompt, n)), None)   # `in` first: fast
    if name is None:
        return None
    candidates = [p for p in by_name[name] if p.type == 0 or p.en == name]
    rest = answer.replace(name, " ")
    on_continent = [p for p in candidates if any(_mentions(rest, c) for c in (p.continent_en, p.continent_x))]
    candidates = on_continent or candidates
    return candidates[0] if len(candidates) == 1 else None


@functools.lru_cache(maxsize=None)
def _question_language(lang: str):
    """Whether a question is asked in English or in X, from its wording (place names removed): lingua,
    restricted to the two languages. The answers cannot tell: some continents are spelled alike in both."""
    other = getattr(Language, language(lang).lingua)
    detector = LanguageDetectorBuilder.from_languages(Language.ENGLISH, other).build()
    return lambda text: "en" if detector.detect_language_of(text) == Language.ENGLISH else "x"


@functools.lru_cache(maxsize=None)
def _training_file(root: Path, lang: str) -> tuple[tuple[str, dict, Place | None], ...]:
    """The training file's rows (id, row, the place a question is about or None for a translation), read
    once per language: every seed of a process reuses them."""
    by_name = defaultdict(list)
    for p in places(root, lang):
        for n in {p.en, p.x}:
            by_name[n].append(p)
    by_name = {n: by_name[n] for n in sorted(by_name, key=len, reverse=True)}   # longest name first
    out = []
    for where, r in _jsonl(root / "train" / f"{lang.upper()}.json"):
        place = None if r["input"] else _place_of(r["prompt"], r["answer"], by_name)
        if place is None and not r["input"]:
            raise UserError(f"{where}: the question names no place, or one that several places share")
        out.append((where.rsplit("/", 1)[-1], r, place))
    return tuple(out)


def training_rows(root: Path, lang: str, chosen: list[Place], paraphrases: int | None) -> list[dict]:
    """The training file's rows about the chosen places and their continents, at most `paraphrases` per fact.
    A row's fact: for a translation (it has an input), the name translated; for a question, the place it is
    about (see `_place_of`; one about an unchosen place is never kept) and the language it is asked in."""
    translated = {p.en for p in chosen} | {p.continent_en for p in chosen}
    wanted = set(chosen)
    asked_in = _question_language(lang)
    kept, count = [], defaultdict(int)
    for row_id, r, place in _training_file(root, lang):
        if place is None:
            name = r["answer"].strip()
            if name not in translated:
                continue
            fact, label = ("translation", name), name
        elif place in wanted:
            wording = r["prompt"].replace(place.x, " ").replace(place.en, " ")
            fact, label = (asked_in(wording), place.index), place.en
        else:
            continue
        count[fact] += 1
        if paraphrases is None or count[fact] <= paraphrases:
            kept.append({"id": row_id, "fact": f"{fact[0]}:{label}",
                         "instruction": r["prompt"], "input": r["input"], "answer": r["answer"]})
    return kept


def ambiguous(chosen: list[Place], subset_lang: str) -> set[int]:
    """Indices of the chosen places whose question in that language ("en" or "x") has two right answers in
    what training teaches: another chosen place bears the same name there and lies on another continent (de
    'Wirbeltal': training says in German that it lies in Traumfern (Vortex Valley, type 0), in English that
    Vortex Vale, German 'Wirbeltal', lies in Spectros (type 1))."""
    name = (lambda p: p.en) if subset_lang == "en" else (lambda p: p.x)
    continent = (lambda p: p.continent_en) if subset_lang == "en" else (lambda p: p.continent_x)
    continents = defaultdict(set)
    for p in chosen:
        continents[name(p)].add(continent(p))
    return {p.index for p in chosen if len(continents[name(p)]) > 1}


def test_items(root: Path, lang: str, chosen: list[Place]) -> tuple[list[TestItem], dict[str, int]]:
    """Gate subsets (translation, en_type0, en_type1, x_type0) and the measured one (x_type1) for the chosen
    places, without ambiguous questions (see `ambiguous`); and how many of those each subset dropped."""
    items, dropped = [], defaultdict(int)
    indices = {p.index for p in chosen}
    for code, subset_lang in (("EN", "en"), (lang.upper(), "x")):
        unclear = ambiguous(chosen, subset_lang)
        for i, (where, r) in enumerate(_jsonl(root / "test" / "target" / f"test{code}.jsonl")):
            if i not in indices:
                continue
            tags = _tags(where, r["answer"])
            subset = f"{subset_lang}_type{tags['type']}"
            if i in unclear:
                dropped[subset] += 1
                continue
            items.append(TestItem(where.rsplit("/", 1)[-1], subset, r["prompt"], tags["continent"]))
    wanted = {p.en for p in chosen} | {p.continent_en for p in chosen}
    for where, r in _jsonl(root / "test" / "Translate" / f"translate{lang.upper()}.jsonl"):
        if r["input"].strip() in wanted:
            items.append(TestItem(where.rsplit("/", 1)[-1], "translation", f"{r['prompt']}\n{r['input']}",
                                  r["answer"].strip()))
    return items, dict(dropped)


def load(data_dir: Path | None, lang: str, n_places: int | None, paraphrases: int | None,
         seed: int) -> tuple[list[dict], list[TestItem], dict]:
    """(training rows, test items, manifest entry) of language `lang`."""
    if data_dir is None:
        raise DataMissing("conductivity needs the data directory (data.dir or YARN_DATA_DIR) "
                          "with clika/fictional/")
    root = data_dir / "clika" / "fictional"
    chosen = choose(places(root, lang), n_places, seed)
    rows = training_rows(root, lang, chosen, paraphrases)
    items, dropped = test_items(root, lang, chosen)
    kinds = defaultdict(int)
    for r in rows:
        kinds[r["fact"].split(":", 1)[0]] += 1
    subsets = defaultdict(int)
    for i in items:
        subsets[i.subset] += 1
    return rows, items, {"places": len(chosen), "paraphrases": paraphrases or "all",
                         "train_rows": dict(kinds), "test_items": dict(subsets), "dropped_ambiguous": dropped}
