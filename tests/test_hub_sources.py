"""Hub parallel sources per direction: WMT-style (one config per language pair, in one order only) and
FLORES-style (one config per language, rows joined by sentence id).

The Hugging Face hub cannot be reached from this machine, so `datasets.load_dataset` is replaced by a fake
that serves small in-memory `datasets.Dataset` objects and records which config each call asked for; the
hub's own reachability probe is told the hub is up (one test keeps it offline). What is tested is ours:
which config a direction asks for, how rows are read and joined, and the ids the pairs get.
"""
from __future__ import annotations

from pathlib import Path

import datasets
import pydantic
import pytest

from core.config import load_config
from core.data import hub
from core.data.parallel import HubSource, Pair, ParallelSource, load_pairs
from core.errors import DataMissing, UserError
from tasks.base import Context

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "configs" / "experiments" / "wmt-flores.yaml"
parse_source = pydantic.TypeAdapter(ParallelSource).validate_python

WMT = {   # WMT19 has de-en and ru-en, never en-de: rows carry both languages under "translation"
    "de-en": [{"translation": {"de": f"Satz {i}.", "en": f"Sentence {i}."}} for i in range(4)],
    "ru-en": [{"translation": {"ru": f"Предложение {i}.", "en": f"Sentence {i}."}} for i in range(3)],
}
FLORES = {   # one config per language; German lacks id 2, English lacks id 4, German's id 1 is empty
    "eng_Latn": [{"id": i, "text": f"English {i}."} for i in (0, 1, 2, 3)],
    "deu_Latn": [{"id": i, "text": "" if i == 1 else f"Deutsch {i}."} for i in (3, 0, 1, 4)],
    "rus_Cyrl": [{"id": i, "text": f"Русский {i}."} for i in (0, 1, 2, 3)],
}


@pytest.fixture
def fake_hub(monkeypatch):
    """`datasets.load_dataset` serving WMT and FLORES configs from memory; returns the (name, config, split)
    of every call. An unknown config fails as the hub's loader does."""
    asked = []

    def load_dataset(name, config=None, split=None, **kwargs):
        asked.append((name, config, split))
        rows = {"wmt/wmt19": WMT, "openlanguagedata/flores_plus": FLORES}.get(name, {}).get(config)
        if rows is None:
            raise ValueError(f"BuilderConfig '{config}' not found. Available: [...]")
        return datasets.Dataset.from_list(rows)

    monkeypatch.setattr(datasets, "load_dataset", load_dataset)
    monkeypatch.setattr(hub, "offline_reason", lambda: "")
    return asked


def flores(**extra) -> HubSource:
    return parse_source({"source": "hub", "name": "openlanguagedata/flores_plus", "split": "devtest",
                         "lang_configs": {"en": "eng_Latn", "de": "deu_Latn", "ru": "rus_Cyrl"}} | extra)


def test_wmt_pair_config_is_asked_for_in_the_order_the_dataset_has(fake_hub):
    source = parse_source({"source": "hub", "name": "wmt/wmt19", "config": "{src}-{tgt}",
                           "split": "validation"})
    en_de = load_pairs(source, "en", "de", "test", None)
    # en-de is tried first; the dataset has only de-en, read with the languages the right way round
    assert fake_hub == [("wmt/wmt19", "en-de", "validation"), ("wmt/wmt19", "de-en", "validation")]
    assert en_de[1] == Pair("hub:wmt/wmt19/de-en:validation:1", "Sentence 1.", "Satz 1.")
    fake_hub.clear()
    de_en = load_pairs(source, "de", "en", "test", None)
    assert fake_hub == [("wmt/wmt19", "de-en", "validation")]
    # the same rows in both directions keep the same ids
    assert [p.id for p in de_en] == [p.id for p in en_de] and de_en[1].src == "Satz 1."
    fake_hub.clear()
    assert load_pairs(source, "en", "ru", "test", None)[0].tgt == "Предложение 0."
    assert fake_hub[-1] == ("wmt/wmt19", "ru-en", "validation")


def test_wmt_configs_by_direction(fake_hub):
    source = parse_source({"source": "hub", "name": "wmt/wmt19", "configs": {"en-de": "de-en"}})
    assert load_pairs(source, "en", "de", "train", None)[0] == Pair("hub:wmt/wmt19/de-en:train:0",
                                                                    "Sentence 0.", "Satz 0.")
    assert fake_hub == [("wmt/wmt19", "de-en", "train")]   # the mapping's config alone: nothing else tried
    with pytest.raises(UserError, match=r"no config for en-ru \(configs: en-de\); add it to configs"):
        load_pairs(source, "en", "ru", "train", None)
    # a direction configs lists wins; any other falls back to the template
    both = parse_source({"source": "hub", "name": "wmt/wmt19", "config": "{tgt}-{src}",
                         "configs": {"en-de": "de-en"}})
    fake_hub.clear()
    load_pairs(both, "en", "ru", "train", None)
    assert fake_hub == [("wmt/wmt19", "ru-en", "train")]


def test_wmt_config_missing_in_both_orders_names_both(fake_hub):
    source = parse_source({"source": "hub", "name": "wmt/wmt19", "config": "{src}-{tgt}"})
    with pytest.raises(UserError, match=r"cannot load \(BuilderConfig 'en-fr' not found.*\) "
                                        r"\(tried configs 'en-fr', 'fr-en'\)"):
        load_pairs(source, "en", "fr", "train", None)


def test_offline_hub_is_data_missing_so_a_fallback_source_steps_in(fake_hub, monkeypatch):
    monkeypatch.setattr(hub, "offline_reason", lambda: "offline mode is set")
    source = parse_source({"source": "hub", "name": "wmt/wmt19", "config": "{src}-{tgt}"})
    with pytest.raises(DataMissing, match=r"^hub dataset 'wmt/wmt19': cannot load \(offline mode is set: "
                                          r".*\(tried configs 'en-fr', 'fr-en'\); use a local file"):
        load_pairs(source, "en", "fr", "test", None)
    # a cached config still loads offline (the fake serves it as a cache would)
    assert load_pairs(source, "en", "de", "test", None)[0].tgt == "Satz 0."


def test_flores_rows_are_joined_by_id(fake_hub, capsys):
    pairs = load_pairs(flores(), "en", "de", "test", None)
    assert [("openlanguagedata/flores_plus", c, "devtest") for c in ("eng_Latn", "deu_Latn")] == fake_hub
    # in the source side's order; id 1 (empty German), 2 (no German) and 4 (no English) dropped, and said
    assert pairs == [Pair("hub:openlanguagedata/flores_plus:devtest:0", "English 0.", "Deutsch 0."),
                     Pair("hub:openlanguagedata/flores_plus:devtest:3", "English 3.", "Deutsch 3.")]
    line = capsys.readouterr().out.strip()
    assert line == ("[data] hub dataset 'openlanguagedata/flores_plus' en-de: 2 sentences in both "
                    "languages; dropped 2 of eng_Latn and 2 of deu_Latn (empty, or no text on the other "
                    "side)")
    # a sentence keeps its id in every direction: en-ru loses nothing (and says nothing), de-en reads the
    # same rows the other way round, in German's order
    en_ru = load_pairs(flores(), "en", "ru", "test", None)
    assert [p.id for p in en_ru] == [f"hub:openlanguagedata/flores_plus:devtest:{i}" for i in range(4)]
    assert capsys.readouterr().out == ""
    de_en = load_pairs(flores(), "de", "en", "test", None)
    assert de_en == [Pair(p.id, p.tgt, p.src) for p in reversed(pairs)]


def test_flores_errors_are_one_clear_line(fake_hub, monkeypatch):
    with pytest.raises(UserError, match=r"lang_configs has no 'fr' \(has: en, de, ru\)"):
        load_pairs(flores(), "en", "fr", "test", None)
    with pytest.raises(UserError, match=r"\(eng_Latn\): no column 'sentence' \(columns: id, text\); set "
                                        r"id_field and text_field"):
        load_pairs(flores(text_field="sentence"), "en", "de", "test", None)
    monkeypatch.setitem(FLORES, "eng_Latn", [{"id": 7, "text": "a"}, {"id": 7, "text": "b"}])
    with pytest.raises(UserError, match=r"\(eng_Latn\): id '7' repeats in 'id'"):
        load_pairs(flores(), "en", "de", "test", None)
    monkeypatch.setitem(FLORES, "eng_Latn", [{"id": 9, "text": "a"}])
    with pytest.raises(UserError, match=r"no 'id' is in both eng_Latn \(1 rows\) and deu_Latn \(3 rows\)"):
        load_pairs(flores(), "en", "de", "test", None)


@pytest.mark.parametrize("source, message", [
    ({"config": "{src}_{lang}"}, r"unknown placeholder \{lang\}"),
    ({"config": "{src"}, r"a template names \{src\} and \{tgt\}"),
    ({"configs": {"en_de": "de-en"}}, r"direction 'en_de' must look like 'en-de'"),
    ({"configs": {"en-xx": "xx-en"}}, r"xx"),
    ({"lang_configs": {"english": "eng_Latn"}}, r"english"),
    ({"lang_configs": {"en": "eng_Latn"}, "config": "de-en"}, r"are two layouts: set one"),
    ({"lang_configs": {"en": "eng_Latn"}, "src_field": "a", "tgt_field": "b"}, r"are two layouts"),
    ({"id_field": "id"}, r"id_field goes with lang_configs"),
    ({"text_field": "text"}, r"text_field goes with lang_configs"),
    ({"lang_config": {"en": "eng_Latn"}}, r"[Ee]xtra inputs"),
])
def test_bad_hub_sources_are_refused(source, message):
    with pytest.raises(pydantic.ValidationError, match=message):
        parse_source({"source": "hub", "name": "x/y"} | source)


def test_a_wrong_key_names_the_config_file_and_line(tmp_path):
    text = EXAMPLE.read_text(encoding="utf-8").replace("text_field: text", "text_feld: text")
    path = tmp_path / "x.yaml"
    path.write_text(text, encoding="utf-8")
    line = next(i for i, row in enumerate(text.splitlines(), 1) if "text_feld" in row)
    with pytest.raises(UserError, match=rf"^{path}:{line}: tasks\.mt\.test\.0\.text_feld: Extra inputs"):
        load_config(path)


def test_example_config_validates_and_prepares_offline(fake_hub, monkeypatch):
    """The shipped example, checked as a config (its model is not loaded) and prepared from the fake hub:
    each direction asks for its own configs, and test pairs carry FLORES ids."""
    cfg = load_config(EXAMPLE, ["data.budget=2", "data.test_size=2", "tasks.mt.directions=[en-de, en-ru]"])
    train, test = cfg.tasks.mt.train, cfg.tasks.mt.test[0]
    assert (train.name, train.config, train.split) == ("wmt/wmt19", "{src}-{tgt}", "validation")
    assert test.lang_configs["de"] == "deu_Latn" and (test.id_field, test.text_field) == ("id", "text")
    assert cfg.eval.comet.model == "Unbabel/wmt22-comet-da"
    # a hub source has no dev split: the line that says so is expected
    prepared = cfg.tasks_used()[0].prepare(Context(cfg, None, EXAMPLE.parent))
    assert {("wmt/wmt19", c, "validation") for c in ("de-en", "ru-en")} <= set(fake_hub)
    assert {c for _, c, s in fake_hub if s == "devtest"} == {"eng_Latn", "deu_Latn", "rus_Cyrl"}
    assert {r["direction"] for r in prepared.rows["test"]} == {"en-de", "en-ru"}
    assert all(r["id"].startswith("hub:openlanguagedata/flores_plus:devtest:") for r in prepared.rows["test"])
    assert {r["id"].rsplit(":", 2)[0] for r in prepared.rows["train"]} == {"hub:wmt/wmt19/de-en",
                                                                           "hub:wmt/wmt19/ru-en"}
    assert prepared.manifest["mt en-de"]["test_source"] == "hub"


def test_a_failure_other_than_a_missing_config_never_reads_the_reversed_pair(fake_hub, monkeypatch):
    """en-de failing for the hub's sake (not for want of the config) must not quietly yield de-en's rows."""
    def load_dataset(name, config=None, split=None, **kwargs):
        fake_hub.append((name, config, split))
        raise ConnectionError("Couldn't reach 'wmt/wmt19' on the Hub")

    monkeypatch.setattr(datasets, "load_dataset", load_dataset)
    source = parse_source({"source": "hub", "name": "wmt/wmt19", "config": "{src}-{tgt}"})
    with pytest.raises(UserError, match="Couldn't reach"):
        load_pairs(source, "en", "de", "train", None)
    assert [config for _, config, _ in fake_hub] == ["en-de"]


def test_a_flores_id_repeated_after_an_empty_row_is_refused(fake_hub, monkeypatch):
    monkeypatch.setitem(FLORES, "eng_Latn", [{"id": i, "text": t} for i, t in ((1, "a"), (3, ""), (3, "c"))])
    with pytest.raises(UserError, match="id '3' repeats"):
        load_pairs(flores(), "en", "de", "test", None)
