"""Several tasks in one experiment: translation and POS tagging share arms, priors, records and the report."""
from pathlib import Path

import cli
from core.io import read_jsonl

REPO = Path(__file__).resolve().parents[1]
SMOKE = str(REPO / "configs" / "experiments" / "smoke.yaml")
UPOS = {"ADJ", "ADP", "ADV", "AUX", "CCONJ", "DET", "INTJ", "NOUN", "NUM", "PART", "PRON", "PROPN", "PUNCT",
        "SCONJ", "SYM", "VERB", "X"}


def test_mt_and_pos_without_training(tmp_path, data_dir, tiny_model):
    arms = ("[{method: base}, {method: pretty, prior: oracle, k: 2}, {method: pretty, prior: frequent, k: 1},"
            " {method: pretty, prior: dictionary, k: 1}]")
    code = cli.main(["run", SMOKE, f"output_dir={tmp_path}", f"data.dir={data_dir}",
                     "tasks.pos={test_langs: [de, fr]}", "data.budget=16", "data.test_size=4", f"arms={arms}",
                     # one rank: nothing trains, and several evaluation ranks are tests/test_eval_ranks.py's
                     "wandb.mode=disabled", "deepspeed.num_gpus=1"])
    assert code == 0
    run = tmp_path / "smoke"
    train = read_jsonl(run / "data" / "train.jsonl")
    assert sum(r["task"] == "pos" for r in train) == 16 and all(r["id"].startswith("ewt:") for r in train
                                                                if r["task"] == "pos")
    records = read_jsonl(run / "results.jsonl")
    units = {(r["arm"], r["task"], r["tgt"]) for r in records}
    # the dictionary prior translates words: it has nothing to offer a tagger and is skipped there
    assert (("pretty-dictionary-k1", "mt", "de") in units
            and not any(a == "pretty-dictionary-k1" and t == "pos" for a, t, _ in units))
    pos = [r for r in records if r["task"] == "pos"]
    assert {(r["arm"], r["tgt"]) for r in pos} == {
        (a, l) for a in ("base", "pretty-oracle-k2", "pretty-frequent-k1") for l in ("de", "fr")}
    for r in pos:
        assert r["src"] == "en" and r["n_items"] == 4
        assert 0 <= r["metrics"]["upos_accuracy"] <= 1 and 0 <= r["metrics"]["invalid_rate"] <= 1
    oracle = next(r for r in pos if r["arm"] == "pretty-oracle-k2")
    for s in oracle["samples"]:
        assert s["reference"].startswith(s["prior"].strip()[:3])  # the first tokens of the gold tag sequence
    frequent = next(r for r in pos if r["arm"] == "pretty-frequent-k1")
    assert frequent["cost"]["train_examples"] == 16  # charged the POS budget, not the translation one
    report = (run / "report.md").read_text()
    assert "## pos: English → German" in report and "UPOS acc %" in report
