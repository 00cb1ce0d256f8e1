import pytest

from eval.report_budget import (NO_DEV, _shot_curves, nudge_tables, render_shots_plot, winner_tables)
from eval.stats import holm, paired_chrf

FREE = {"train_examples": 256, "train_flops": 0, "train_device_s": 0.0, "extra_prompt_tokens_per_item": 300,
        "extra_decode_steps_per_item": 0, "extra_model_calls_per_item": 0}
NONE = {**FREE, "train_examples": 0, "extra_prompt_tokens_per_item": 0}
SFT = {**NONE, "train_examples": 256, "train_flops": 3.3e13, "train_device_s": 290.0}
LORA = {**SFT, "train_flops": 2.2e13, "train_device_s": 200.0}

REFERENCES = [f"Der Hund Nummer {i} schläft heute im warmen Garten hinter dem Haus." for i in range(40)]


def outputs(kept):
    """Outputs keeping the first `kept` share (one for all, or one per item) of each reference's words."""
    shares = kept if isinstance(kept, list) else [kept] * len(REFERENCES)
    return [" ".join(r.split()[: max(1, round(q * len(r.split())))]) for q, r in zip(shares, REFERENCES)]


def rec(arm, method, chrf, cost, split="test", kept=None, tgt="de", experiment="demo", **extra):
    per_item = {"output": outputs(kept), "reference": REFERENCES} if kept is not None else None
    return {"experiment": experiment, "arm": arm, "method": method, "task": "mt", "src": "en", "tgt": tgt,
            "metrics": {"chrf": chrf}, "cost": dict(cost), "split": split, "per_item": per_item,
            "n_items": len(REFERENCES), "prior": None, **extra}


ORACLE = {"source": "oracle", "k": 1}
ICL = {"shots": 4, "select": "random", "shots_used_mean": 4.0, "dropped": 0, "max_prompt_tokens": 1024,
       "from_arm": None}


def arms(tgt="de", sft_kept=1.0, icl_kept=0.6):
    """(test, dev) of one unit. On dev, sft beats lora and icl-random beats icl-similar; on test the other
    way round: a choice made on test would name lora and icl-similar. The base arm and an oracle prior
    score highest on both splits, yet are neither kind."""
    test = [rec("base", "base", 70.0, NONE, kept=0.2, tgt=tgt),
            rec("sft", "sft", 45.0, SFT, kept=sft_kept, tgt=tgt),
            rec("lora", "lora", 47.0, LORA, kept=0.5, tgt=tgt),
            rec("icl-random-4", "icl", 40.0, FREE, kept=icl_kept, tgt=tgt, icl=ICL),
            rec("icl-similar-4", "icl", 43.0, FREE, kept=0.3, tgt=tgt, icl={**ICL, "select": "similar"}),
            rec("pretty-oracle-k1", "pretty", 80.0, FREE, kept=1.0, tgt=tgt, prior=ORACLE)]
    dev_q = {"base": 90.0, "sft": 44.0, "lora": 42.0, "icl-random-4": 41.0, "icl-similar-4": 39.0,
             "pretty-oracle-k1": 95.0}
    dev = [{**r, "split": "dev", "metrics": {"chrf": dev_q[r["arm"]]}, "per_item": None} for r in test]
    return test, dev


def row_of(table, direction="English → German"):
    (row,) = [r for r in table.rows if r[0] == direction]
    return dict(zip(table.header, row))


def test_each_kind_is_chosen_on_dev_not_test_and_never_base_or_oracle():
    test, dev = arms()
    (table,) = winner_tables(test, dev)
    row = row_of(table)
    assert row["training arm (T)"] == "sft" and row["training-free arm (F)"] == "icl-random-4"
    assert row["T dev chrF"] == "44.00" and row["T test chrF"] == "45.00"
    assert row["F dev chrF"] == "41.00" and row["F test chrF"] == "40.00"
    assert row["T training"] == "3.3e13; 290; 256" and row["F per item"] == "300; 0"
    assert row["winner"] == "sft" and row["p F vs T (Holm)"].endswith("*")
    assert "base arm (no budget)" in table.note and "never chooses" in table.note


def test_dev_ties_go_to_the_cheaper_arm():
    test, dev = arms()
    dev = [{**r, "metrics": {"chrf": 44.0}} if r["arm"] == "lora" else r for r in dev]
    assert row_of(winner_tables(test, dev)[0])["training arm (T)"] == "lora"   # fewer FLOPs than sft


def test_a_unit_without_dev_records_chooses_nothing_and_says_so():
    test, dev = arms()
    fr_test, fr_dev = arms("fr")
    # en→fr: dev records only for the training arms
    fr_dev = [r for r in fr_dev if r["method"] not in ("icl", "pretty")]
    (table,) = winner_tables(test + fr_test, dev + fr_dev)
    fr = row_of(table, "English → French")
    assert fr["winner"] == NO_DEV and fr["training arm (T)"] == "—"
    assert fr["training-free arm (F)"] == "no dev records" and fr["T test chrF"] == ""
    assert row_of(table)["training arm (T)"] == "sft"           # the other unit still chooses
    # test records mixed into the dev records are never read as dev
    assert row_of(winner_tables(test, test)[0])["winner"] == NO_DEV


def test_no_unit_with_both_kinds_no_table():
    test, dev = arms()
    assert winner_tables([r for r in test if r["method"] != "icl"], dev) == []   # oracle is no free arm
    assert winner_tables([r for r in test if r["method"] not in ("sft", "lora")], dev) == []


def test_p_is_holm_corrected_over_the_rows_of_the_table():
    test, dev = arms(sft_kept=1.0, icl_kept=0.6)
    fr_test, fr_dev = arms("fr", sft_kept=[1.0, 0.9] * 20, icl_kept=[0.9, 1.0] * 20)
    (table,) = winner_tables(test + fr_test, dev + fr_dev)
    raw = [paired_chrf([outputs(t), outputs(f)], REFERENCES)[1][2]
           for t, f in ((1.0, 0.6), ([1.0, 0.9] * 20, [0.9, 1.0] * 20))]
    shown = [float(row_of(table, d)["p F vs T (Holm)"].rstrip("*"))
             for d in ("English → German", "English → French")]
    assert shown == pytest.approx(holm(raw), abs=5e-4)
    smaller = raw.index(min(raw))
    assert shown[smaller] > raw[smaller] + 5e-4
    assert "over the 2 tests of this table" in table.note


NUDGE = {"threshold": 0.4, "from_arm": "sft", "tokens": 200, "supplied": 50, "share": 0.25,
         "first": {"1": 20, "2": 30, "3": 35}, "histogram": [20, 10, 5, 15]}


def test_nudge_table_counts_and_percentages():
    test, _ = arms()
    nudged = rec("nudge-sft-0.4", "nudge", 41.0, {**SFT, "extra_decode_steps_per_item": 12.5}, nudge=NUDGE)
    (table,) = nudge_tables(test + [nudged])
    assert table.rows == [["nudge-sft-0.4", "0.4", "41.00", "50 / 200", "25.0", "20 (40.0%)", "30 (60.0%)",
                           "35 (70.0%)", "12.5"]]
    assert "prior-knowledge hypothesis" in table.note
    print(table.markdown(3))
    assert nudge_tables(test) == []


def test_shots_plot_and_its_zero_shot_points():
    test, _ = arms()
    more = [rec("icl-random-1", "icl", 33.0, FREE, icl={**ICL, "shots": 1}),
            rec("icl-random-8-sft", "icl", 49.0, SFT, icl={**ICL, "shots": 8, "from_arm": "sft"}),
            rec("pretty-frequent-k1", "pretty", 36.0, FREE, prior={"source": "frequent", "k": 1}),
            rec("pretty-frequent-k1-icl-2", "pretty", 38.0, FREE, prior={"source": "frequent", "k": 1},
                icl={**ICL, "shots": 2})]
    curves, base, sft = _shot_curves(test + more)
    assert curves["icl random"] == {0: 70.0, 1: 33.0, 4: 40.0}              # 0 shots: the base arm
    assert curves["icl random on sft"] == {0: 45.0, 8: 49.0}                # 0 shots: that arm itself
    assert curves["PreTTY frequent k=1 + icl random"] == {0: 36.0, 2: 38.0}  # 0 shots: the prior alone
    assert base == 70.0 and sft == 45.0
    png = render_shots_plot(test + more)
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
    assert render_shots_plot([r for r in test if not r.get("icl")]) is None


def test_a_sweep_has_a_row_per_budget_in_budget_order():
    test, dev = [], []
    for name in ("budget1024", "budget64"):
        t, d = arms()
        test += [{**r, "experiment": name, "per_item": None} for r in t]
        dev += [{**r, "experiment": name} for r in d]
    # in budget64 lora wins on dev: each experiment chooses among its own arms
    dev = [{**r, "metrics": {"chrf": 50.0}} if (r["experiment"], r["arm"]) == ("budget64", "lora") else r
           for r in dev]
    (table,) = winner_tables(test, dev)
    assert [(r[1], r[2]) for r in table.rows] == [("budget64", "lora"), ("budget1024", "sft")]
    assert table.header[1] == "experiment"
    assert {r[table.header.index("winner")] for r in table.rows} == {
        "not tested (no per-item outputs on the same references)"}


def test_a_dev_record_of_other_weights_or_config_chooses_nothing():
    """dev/ left from before a retraining (other weights) or from another config is not a choice."""
    test, dev = arms()
    ok = winner_tables(test, dev)[0].rows
    stale = [{**r, "weights": {"sha256": "0" * 64}} if r["arm"] == "sft" else r for r in dev]
    chosen = {row[1] for row in winner_tables(test, stale)[0].rows}
    assert "sft" in {row[1] for row in ok} and "sft" not in chosen
    other = [{**r, "config_hash": "elsewhere"} for r in dev]
    assert row_of(winner_tables(test, other)[0])["winner"] == NO_DEV
