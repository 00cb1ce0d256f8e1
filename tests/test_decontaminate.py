"""No test data in training data (fairness rule 9): a test target shared with training is refused, and a
pretraining document holding a test or dev sentence is dropped before sampling and counted in the manifest."""
import json

import pytest
import yaml

import cli
from core.data.budget import check_disjoint
from core.data.decontaminate import Index, decontaminate
from core.data.mono import Document
from core.data.parallel import Pair
from core.errors import UserError
from core.io import read_jsonl

PAIRS = [("The old fisherman mended his nets by the harbour every single morning before the sun came up.",
          "Der alte Fischer flickte jeden Morgen am Hafen seine Netze, lange bevor die Sonne über den Hügeln "
          "aufging."),
         ("Our neighbours planted three apple trees behind the school last spring and watered them every "
          "evening.",
          "Unsere Nachbarn pflanzten im letzten Frühling drei Apfelbäume hinter der Schule und gossen sie "
          "jeden Abend."),
         ("A small boat carried the letters across the lake whenever the winter ice was thin enough to "
          "break.",
          "Ein kleines Boot brachte die Briefe über den See, sobald das Eis im Winter dünn genug zum Brechen "
          "war.")]
TRAIN = [(f"Training sentence number {i} is about the weather.",
          f"Trainingssatz Nummer {i} handelt vom Wetter.")
         for i in range(12)]


def test_check_disjoint_refuses_a_test_target_seen_in_training():
    train = [Pair("file:a:1", "The cat sleeps.", "Die Katze schläft."), Pair("file:a:2", "Hello.", "Hallo.")]
    check_disjoint(train, [Pair("pud:1", "A dog barks.", "Ein Hund bellt.")])
    with pytest.raises(UserError, match=r"1 test target sentence.*'pud:2'"):
        check_disjoint(train, [Pair("pud:2", "The cat is sleeping.", "Die  Katze schläft.")])


def test_index_matches_word_13_grams_case_blind_and_zh_characters():
    held = [{"id": "7", "task": "mt", "direction": "en-de", "src": PAIRS[0][0], "tgt": PAIRS[0][1]},
            {"id": "9", "task": "mt", "direction": "en-zh", "src": "x",
             "tgt": ("在很久很久以前的一个小村庄里住着一位老渔夫"
                     "他每天早上都会在港口修补自己的渔网"
                     "然后出海去捕鱼直到太阳落山才回家")},
            {"id": "3", "task": "pos", "direction": "en-de", "src": PAIRS[1][1], "tgt": "NOUN VERB " * 10}]
    index = Index.of(held)
    words = PAIRS[0][1].split()
    assert index.hit("Vorwort. " + " ".join(words[:13]).upper() + " Nachwort.", False) == "mt en-de 7"
    assert index.hit(" ".join(words[:12]), False) is None                     # 12 words: no hit
    zh = ("序言。很久很久以前的一个小村庄里住着一位老渔夫"
          "他每天早上都会在港口修补自己的渔网"
          "然后出海去捕鱼直到太阳落山才回家。")
    assert index.hit(zh, True) == "mt en-zh 9" and index.hit(zh, False) is None   # 53 shared characters
    assert index.hit(zh[:3] + zh[4:52], True) is None                           # 48: no hit
    assert index.hit(PAIRS[1][1], False) == "pos en-de 3"                         # POS words are text ...
    assert index.hit("NOUN VERB " * 10, False) is None                        # ... their tags are not


class CharTokenizer:
    def __call__(self, texts, add_special_tokens=False):
        return type("Out", (), {"input_ids": [list(t) for t in texts]})


def test_decontaminate_drops_and_records():
    docs = {"de": [Document("a", "Nichts."), Document("b", "Es hieß: " + PAIRS[1][1])]}
    kept, record = decontaminate(docs, Index.of([{"id": "1", "task": "mt", "direction": "en-de",
                                                  "src": PAIRS[1][0], "tgt": PAIRS[1][1]}]), CharTokenizer())
    assert [d.id for d in kept["de"]] == ["a"]
    assert record["by_lang"]["de"] == {"documents_checked": 2, "hits": 1,
                                       "tokens_removed": len(docs["de"][1].text),
                                       "examples": [{"doc": "b", "held": "mt en-de 1"}]}


def test_prepare_drops_pretraining_documents_holding_test_sentences(tmp_path, tiny_model):
    (tmp_path / "test.tsv").write_text("".join(f"{s}\t{t}\n" for s, t in PAIRS), encoding="utf-8")
    (tmp_path / "train.tsv").write_text("".join(f"{s}\t{t}\n" for s, t in TRAIN), encoding="utf-8")
    clean = [f"Ein sauberer Absatz Nummer {i} über Gärten, Flüsse und das Wetter im ganzen Land."
             for i in range(6)]
    (tmp_path / "de.txt").write_text("\n\n".join(clean[:3] + [f"Im Brief stand: {PAIRS[2][1]} Mehr nicht."]
                                                 + clean[3:]) + "\n", encoding="utf-8")
    (tmp_path / "en.txt").write_text(f"A clean English paragraph.\n\nShe wrote: {PAIRS[0][0].lower()}\n",
                                     encoding="utf-8")
    text = [{"source": "text", "path": "de.txt", "lang": "de"},
            {"source": "text", "path": "en.txt", "lang": "en"}]
    config = {"name": "decon", "seed": 0, "model": {"name": "tiny-llama"},
              "tasks": {"mt": {"directions": ["en-de"], "train": {"source": "file", "path": "train.tsv"},
                               "test": [{"source": "file", "path": "test.tsv"}]}},
              "data": {"budget": 12, "test_size": 3, "token_budget": 200},
              "arms": [{"method": "base"}, {"method": "cpt", "langs": ["de"], "max_length": 32, "text": text},
                       {"method": "mixed", "langs": ["en", "de"], "max_length": 32, "text": text}],
              "deepspeed": {"config": "configs/deepspeed/zero2.json", "num_gpus": 1}}
    (tmp_path / "decon.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    out = tmp_path / "runs"
    assert cli.main(["run", str(tmp_path / "decon.yaml"), f"output_dir={out}", "--stage", "prepare"]) == 0
    run = out / "decon" / "data"
    manifest = json.loads((run / "manifest.json").read_text())
    de = manifest["pretrain cpt"]["decontamination"]["by_lang"]["de"]
    assert de["documents_checked"] == 7 and de["hits"] == 1 and de["tokens_removed"] > 20
    assert (de["examples"][0]["doc"] == "text:de.txt:7"
            and de["examples"][0]["held"].startswith("mt en-de file:"))
    mixed = manifest["pretrain mixed"]["decontamination"]["by_lang"]
    # a source, lowercased
    assert mixed["en"]["hits"] == 1 and mixed["en"]["examples"][0]["doc"] == "text:en.txt:3"
    for arm in ("cpt", "mixed"):
        assert not ({"text:de.txt:7", "text:en.txt:3"}
                    & {r["doc"] for r in read_jsonl(run / f"pretrain-{arm}.jsonl")})


def test_held_texts_shorter_than_an_ngram_are_matched_whole():
    """Most zh/ja test sentences have fewer than 13 words and many fewer than 50 characters: matched whole."""
    zh = "他每天早上都会在港口修补自己的渔网然后出海"          # 21 characters, one "word"
    en = "And the king said unto them, go your way."         # 9 words
    index = Index.of([{"id": "5", "task": "mt", "direction": "en-zh", "src": en, "tgt": zh},
                      {"id": "6", "task": "mt", "direction": "en-de", "src": "Ja.", "tgt": "Ja."}])
    assert index.hit("序言。" + zh + "。后记", True) == "mt en-zh 5"
    assert index.hit("Then, AND THE KING SAID UNTO THEM, GO YOUR WAY; and they went.", False) == "mt en-zh 5"
    assert index.hit("And the king said unto them, go", False) is None
    assert index.hit("Ja, das ist so.", False) is None and index.too_short == 1   # "Ja." decides nothing
