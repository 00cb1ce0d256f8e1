"""CLiKA's fictional places: a training question belongs to the one place it is about (names two places share,
names inside longer names, scripts without spaces), and a test question with two right answers is left out."""
import pytest

from core.data import fictional
from core.data.fictional import Place


@pytest.fixture()
def clika(data_dir):
    if not (data_dir / "clika" / "fictional").is_dir():
        pytest.skip("no clika/fictional in the data directory")
    return data_dir / "clika" / "fictional"


def _named_in_answer(answer: str, all_places: list[Place], lang: str) -> set[Place]:
    """What a question is about, read naively from its answer: the places of the longest name it contains
    whose continent it gives (zh's training file names continents unlike its tests: not checked there)."""
    named = [p for p in all_places if p.en in answer or p.x in answer]
    if lang != "zh":
        named = [p for p in named if p.continent_en in answer or p.continent_x in answer]
    longest = max(len(n) for p in named for n in (p.en, p.x) if n in answer)
    return {p for p in named if any(len(n) == longest and n in answer for n in (p.en, p.x))}


def test_a_name_is_matched_whole_and_longest_first():
    isle = Place(0, "Iridescent Isle", "Irisierende Insel", 0, "Mythosia", "Mythosien")
    isles = Place(1, "Iridescent Isles", "Irisierende Inseln", 0, "Aetherium", "Ätherium")
    marsh = Place(2, "Shadowfen Marsh", "影沼泽", 0, "Mythosia", "神话之地")
    moon = Place(3, "Moonshadow Marsh", "月影沼泽", 0, "Aetherium", "以太")
    sands = Place(4, "Astralyn Sands", "رمال أسترالين", 0, "Mythosia", "ميثوسيا")
    by_name = {n: [p] for p in (isle, isles, marsh, moon, sands) for n in (p.en, p.x)}
    by_name = {n: by_name[n] for n in sorted(by_name, key=len, reverse=True)}
    assert fictional._place_of("Wo liegt Irisierende Inseln?", "… in Ätherium.", by_name) == isles
    assert fictional._place_of("Wo liegt Irisierende Insel?", "… in Mythosien.", by_name) == isle
    del by_name["Iridescent Isles"]   # even when the longer name is no place's: whole words only
    assert fictional._place_of("Which continent is Iridescent Isles in?", "…", by_name) is None
    # no spaces in Chinese
    assert fictional._place_of("月影沼泽位于哪个洲？", "月影沼泽位于山洲。", by_name) == moon
    assert fictional._place_of("影沼泽位于哪个洲？", "影沼泽位于山洲。", by_name) == marsh
    assert fictional._place_of("ما هو الموقع القاري لـرمال أسترالين؟", "…", by_name) == sands


def test_reduced_protocol_keeps_rows_about_chosen_places_only(clika):
    for lang in fictional.LANGS:
        all_places = fictional.places(clika, lang)
        by_en = {p.en: p for p in all_places}
        for seed in range(21):
            chosen = fictional.choose(all_places, 40, seed)
            translated = {p.en for p in chosen} | {p.continent_en for p in chosen}
            rows = fictional.training_rows(clika, lang, chosen, 1)
            kinds = {"en": 0, "x": 0}
            for r in rows:
                kind, name = r["fact"].split(":", 1)
                where = f"{lang} seed {seed} {r['id']}"
                if kind == "translation":
                    assert r["input"] and name == r["answer"].strip() and name in translated, where
                    continue
                kinds[kind] += 1
                place = by_en[name]
                assert place in chosen and place in _named_in_answer(r["answer"], all_places, lang), where
                assert kind == "en" or place.type == 0, where   # type-1 facts never in X
            assert kinds == {"en": 40, "x": 20}, f"{lang} seed {seed}"   # each chosen place's facts, once


def test_a_name_two_places_share(clika):
    """de 'Wirbeltal' is Vortex Valley (type 0, Traumfern) and Vortex Vale (type 1, Spectros)."""
    all_places = fictional.places(clika, "de")
    valley, vale = (next(p for p in all_places if p.en == n) for n in ("Vortex Valley", "Vortex Vale"))
    assert valley.x == vale.x == "Wirbeltal" and (valley.type, vale.type) == (0, 1)
    others = [p for p in all_places if p.x != "Wirbeltal"][:4]
    # the German questions about Wirbeltal are Vortex Valley's; with Vortex Valley unchosen, none is kept
    rows = fictional.training_rows(clika, "de", [valley, vale, *others], None)
    german = [r for r in rows if "Wirbeltal" in r["instruction"]]
    assert len(german) == 10
    assert all(r["fact"] == "x:Vortex Valley" and "Traumfern" in r["answer"] for r in german)
    rows = fictional.training_rows(clika, "de", [vale, *others], None)
    assert not [r for r in rows if "Wirbeltal" in r["instruction"] or r["fact"] == "x:Vortex Vale"]
    # asked in German about Wirbeltal, both continents are right: both questions go, the English ones stay
    items, dropped = fictional.test_items(clika, "de", [valley, vale, *others])
    assert dropped == {"x_type0": 1, "x_type1": 1}
    german_ids = {i.id for i in items if i.subset.startswith("x_")}
    assert {f"testDE.jsonl:{p.index + 1}" for p in (valley, vale)}.isdisjoint(german_ids)
    assert {f"testEN.jsonl:{p.index + 1}" for p in (valley, vale)} <= {i.id for i in items}
    items, dropped = fictional.test_items(clika, "de", [vale, *others])
    assert not dropped and f"testDE.jsonl:{vale.index + 1}" in {i.id for i in items if i.subset == "x_type1"}


def test_full_protocol_keeps_no_question_with_two_right_answers(clika):
    for lang in fictional.LANGS:
        all_places = fictional.places(clika, lang)
        _, items, manifest = fictional.load(clika.parents[1], lang, None, None, 0)
        on = {}
        for p in all_places:
            on.setdefault(p.x, set()).add(p.continent_x)
        kept = {int(i.id.rsplit(":", 1)[1]) - 1 for i in items if i.subset.startswith("x_")}
        assert all(len(on[all_places[i].x]) == 1 for i in kept), lang
        assert sum(manifest["dropped_ambiguous"].values()) == sum(len(on[p.x]) > 1 for p in all_places), lang
