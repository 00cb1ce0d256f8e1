"""Country facts as multiple-choice questions in ten languages: the capital, continent and currency of each
country. Names come from PyPI `world-countries` (en, de, fr, es, ru, zh, ar) and, for ja, it, pt, from CLDR
through `babel` (territory names; capitals as time-zone exemplar cities, where CLDR has the capital's zone);
currency names from CLDR for every language.

The three wrong options are other countries' values (other continents, other currencies) picked by the item
id and the seed, so every language asks the same question with the same options in the same order.
"""
from __future__ import annotations

import json
import random
import zoneinfo
from functools import lru_cache
from importlib.resources import files

from babel import Locale
from babel.dates import get_timezone_location
from babel.numbers import get_currency_name

from core.data.types import Question
from core.errors import UserError

TEMPLATES = {  # capital, continent, currency
    "en": ("What is the capital of {c}?", "On which continent is {c}?", "What is the currency of {c}?"),
    "de": ("Was ist die Hauptstadt von {c}?", "Auf welchem Kontinent liegt {c}?",
           "Was ist die Währung von {c}?"),
    "fr": ("Quelle est la capitale du pays {c} ?", "Sur quel continent se trouve le pays {c} ?",
           "Quelle est la monnaie du pays {c} ?"),
    "es": ("¿Cuál es la capital de {c}?", "¿En qué continente está {c}?", "¿Cuál es la moneda de {c}?"),
    "ru": ("Какой город является столицей страны {c}?", "На каком континенте находится страна {c}?",
           "Какая валюта в стране {c}?"),
    "zh": ("{c}的首都是哪里？", "{c}位于哪个大洲？", "{c}的货币是什么？"),
    "ar": ("ما هي عاصمة {c}؟", "في أي قارة تقع {c}؟", "ما هي عملة {c}؟"),
    "ja": ("{c}の首都はどこですか？", "{c}はどの大陸にありますか？", "{c}の通貨は何ですか？"),
    "it": ("Qual è la capitale di {c}?", "In quale continente si trova {c}?", "Qual è la valuta di {c}?"),
    "pt": ("Qual é a capital de {c}?", "Em que continente fica {c}?", "Qual é a moeda de {c}?"),
}
LANGS = tuple(TEMPLATES)
_WORLD_COUNTRIES = {"en": "en", "de": "de", "fr": "fr", "es": "es", "ru": "ru", "zh": "ch", "ar": "ar"}
# world-countries' English continent names -> CLDR region codes (for names in any locale)
_CONTINENTS = {"Africa": "002", "Asia": "142", "Europe": "150", "North America": "003",
               "South America": "005", "Oceania": "009"}


@lru_cache(maxsize=None)
def _world(lang: str) -> dict[str, dict]:
    path = files("world_countries") / "data" / f"countries_{_WORLD_COUNTRIES[lang]}.json"
    return {c["iso2"]: c for c in json.loads(path.read_text(encoding="utf-8"))}


@lru_cache(maxsize=None)
def _capital_zones() -> dict[str, str]:
    """English exemplar city -> time zone, for capitals in languages world-countries lacks."""
    zones = {}
    for tz in sorted(zoneinfo.available_timezones()):
        try:
            zones.setdefault(get_timezone_location(tz, locale="en", return_city=True), tz)
        except (LookupError, ValueError):
            continue
    return zones


def _names(lang: str) -> dict[str, dict[str, str]]:
    """iso2 -> {"country", "capital", "continent", "currency"} in `lang` (missing values left out)."""
    locale = Locale.parse(lang)
    out = {}
    for iso2, en in _world("en").items():
        if en["continent"] not in _CONTINENTS:
            continue
        entry = {"continent": locale.territories.get(_CONTINENTS[en["continent"]], "")}
        if en["currency"]:
            name = get_currency_name(en["currency"].split(",")[0], locale=lang)
            entry["currency"] = "" if name == en["currency"] else name   # babel echoes unknown codes
        if lang in _WORLD_COUNTRIES:
            native = _world(lang).get(iso2, {})
            entry |= {"country": native.get("name", ""), "capital": native.get("capital", "")}
        else:
            entry["country"] = locale.territories.get(iso2, "")
            zone = _capital_zones().get(en["capital"])
            entry["capital"] = get_timezone_location(zone, locale=lang, return_city=True) if zone else ""
        out[iso2] = {k: v for k, v in entry.items() if v}
    return out


def questions(lang: str, seed: int = 0) -> list[Question]:
    if lang not in TEMPLATES:
        raise UserError(f"knowledge set 'facts': no questions in {lang!r} (languages: {', '.join(LANGS)})")
    en, names = _world("en"), _names(lang)
    out = []
    for relation, template in zip(("capital", "continent", "currency"), TEMPLATES[lang]):
        # the wrong options differ from the right one in English (two countries may share a currency)
        key = {"capital": "capital", "continent": "continent", "currency": "currency"}[relation]
        for iso2 in sorted(en):
            gold_en = en[iso2][key]
            mine = names.get(iso2, {})
            if relation not in mine or "country" not in mine:
                continue
            rng = random.Random(f"{seed}:{relation}:{iso2}")
            if relation == "continent":
                wrong = [c for c in sorted(_CONTINENTS) if c != gold_en]
                options_en = rng.sample(wrong, 3)
                rendered = [_continent(lang, c) for c in options_en]
            else:
                pool = sorted({c[key] for c in en.values() if c[key] and c[key] != gold_en})
                options_en = rng.sample(pool, 3)
                by_value = {c[key]: names.get(i, {}).get(relation) for i, c in sorted(en.items())}
                rendered = [by_value.get(v) for v in options_en]
            if not all(rendered) or len({*rendered, mine[relation]}) < 4:
                continue
            label = rng.randrange(4)
            options = rendered[:label] + [mine[relation]] + rendered[label:]
            question = template.format(c=mine["country"])
            out.append(Question(f"facts:{relation}:{iso2}", question, tuple(options), label))
    return out


def _continent(lang: str, english_name: str) -> str:
    return Locale.parse(lang).territories.get(_CONTINENTS[english_name], "")
