import copy
import csv
import json

import numpy as np
import pytest
from matplotlib.colors import to_rgb
from matplotlib.image import imread

from core.errors import UserError
import cli
from eval.records import load_records
from eval.report import build_report, quality_tables, render_csv
from eval.report_plots import pareto_front
from eval.report_stats import intervals
from eval.stats import holm

ZERO_COST = {"train_examples": 0, "train_tokens": 0, "train_flops": 0, "train_wall_s": 0.0,
             "train_device_s": 0.0, "train_peak_mem_mb": 0.0, "eval_wall_s": 60.0}
SFT_COST = {"train_examples": 256, "train_tokens": 20480, "train_flops": 3.3e13, "train_wall_s": 300.0,
            "train_device_s": 290.0, "train_peak_mem_mb": 5000.0, "eval_wall_s": 60.0}
LORA_COST = {**SFT_COST, "train_flops": 2.2e13, "train_wall_s": 200.0, "train_peak_mem_mb": 3000.0}


REFERENCES = [f"Der Hund Nummer {i} schläft heute im warmen Garten hinter dem Haus." for i in range(40)]


def outputs(kept):
    """Outputs that keep the first `kept` share (one for all, or one per item) of each reference's words."""
    shares = kept if isinstance(kept, list) else [kept] * len(REFERENCES)
    return [" ".join(r.split()[: max(1, round(q * len(r.split())))]) for q, r in zip(shares, REFERENCES)]


def record(arm, method, bleu, chrf, off, cost, tgt="de", prior=None, steps=0, kept=None, undecided=0.0):
    samples = [{"id": f"{tgt}-{i}", "source": f"Source sentence {i}.", "reference": f"Referenz {i}.",
                "output": f"{arm} output {i}.", "prior": "Das" if prior else None} for i in range(5)]
    per_item = {"output": outputs(kept), "reference": REFERENCES} if kept is not None else {}
    return {"experiment": "demo", "arm": arm, "method": method, "task": "mt", "src": "en", "tgt": tgt,
            "metrics": {"bleu": bleu, "chrf": chrf, "off_target_rate": off,
                        "off_target_undecided_rate": undecided},
            "signatures": {"bleu": "nrefs:1|tok:13a|version:2.6.0", "chrf": "nrefs:1|nc:6|version:2.6.0"},
            "n_items": 100, "samples": samples, "prior": prior, "per_item": per_item,
            "weights": {"path": "/ckpt", "sha256": "abc"}, "config_hash": "cfg123", "git_rev": "deadbeef",
            "cost": {**cost, "extra_decode_steps_per_item": steps, "extra_model_calls_per_item": steps}}


RECORDS = [  # deliberately out of reading order
    record("pretty-sft-k2", "pretty", 14.1, 41.7, 0.04, SFT_COST, prior={"source": "sft", "k": 2}, steps=2,
           undecided=0.03),
    record("sft", "sft", 18.2, 47.3, 0.01, SFT_COST, kept=[0.8, 1.0] * 20),
    record("pretty-frequent-k1", "pretty", 9.9, 37.5, 0.12, {**ZERO_COST, "eval_wall_s": 70.0},
           prior={"source": "frequent", "k": 1}, steps=1, kept=[1.0, 0.8] * 20),
    record("base", "base", 8.4, 35.2, 0.31, ZERO_COST, kept=0.2),
    record("lora", "lora", 16.5, 45.0, 0.02, LORA_COST),
    record("pretty-sft-k1", "pretty", 13.0, 40.9, 0.05, SFT_COST, prior={"source": "sft", "k": 1}, steps=1),
    record("base", "base", 5.5, 12.0, 0.4, ZERO_COST, tgt="zh"),
    record("sft", "sft", 11.0, 19.5, 0.03, SFT_COST, tgt="zh"),
]


@pytest.fixture
def run_dir(tmp_path):
    (tmp_path / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in RECORDS))
    return tmp_path


def test_report_writes_its_files(run_dir):
    paths, tables = build_report(run_dir)
    assert set(paths) == {"md", "html", "csv", "quality_vs_cost", "quality_vs_examples",
                          "quality_vs_device_hours", "quality_vs_extra_steps",
                          "quality_vs_k"}  # no budget plot: one budget
    assert all(p.parent == run_dir and p.is_file() for p in paths.values())
    assert "quality: mt: English → German (100 items)" in tables

    md = paths["md"].read_text()
    assert "# Cost vs quality: demo" in md and "deadbeef" in md and "cfg123" in md
    assert "## mt: English → German (100 items)" in md and "## mt: English → Chinese" in md
    # records without per-item outputs have no interval; SFT is the arm the others are tested against
    # training tokens/s = 20480 / 300 s; base trained nothing, so it has none
    # degenerate %: n/a, these records are older than the degeneration rate
    assert ("| pretty-sft-k2 | 14.10 | 41.70 | n/a | 4.0 | 3.0 | n/a |  | 256 | 20480 | 3.3e13 | 300.0 "
            "| 290.0 | 5000 "
            "| 68 | 2 |") in md
    sft = next(line for line in md.splitlines() if line.startswith("| sft | 18.20 | 47.30 | ±"))
    assert sft.endswith("| 1.0 | 0.0 | n/a |  | 256 | 20480 | 3.3e13 | 300.0 | 290.0 | 5000 | 68 | 0 |")
    # base keeps a fifth of each reference, SFT most of it: a significant gap; the frequent prior as much, on
    # other items. Two arms are tested against SFT here: Holm doubles the smaller p (the bootstrap's floor,
    # 1/1001)
    assert "| 31.0 | 0.0 | n/a | 0.002* | 0 | 0 | 0 | 0.0 | 0.0 | 0 | n/a | 0 |" in next(
        l for l in md.splitlines() if l.startswith("| base |"))
    frequent = next(l for l in md.splitlines() if l.startswith("| pretty-frequent-k1 |")).split(" | ")
    assert float(frequent[7]) > 0.05
    german_note = md.split("## mt: English → German")[1].split("##")[0]
    assert "p vs SFT (Holm)" in german_note and "Holm-corrected over 2 tests" in german_note
    assert "too short to tell %" in german_note and "fewer than 10 letters" in german_note
    # the frequent prior costs 10 s more per 100 items than base: SFT's 290 device-seconds pay back after
    # 2,900
    assert "| sft | pretty-frequent-k1 | 290 | 0.100 | 2,900 |" in md
    assert "`nrefs:1|tok:13a|version:2.6.0`" in md

    german = md.split("## mt: English → German")[1].split("##")[0]
    order = ["base", "lora", "sft", "pretty-frequent-k1", "pretty-sft-k1", "pretty-sft-k2"]
    positions = [german.index(f"| {arm} |") for arm in order]
    assert positions == sorted(positions)

    samples = md.split("## Samples")[1]
    assert samples.count("output: pretty-sft-k1 output") == 3
    assert 'prior: "Das"' in samples

    rows = list(csv.DictReader(paths["csv"].open()))
    assert len(rows) == len(RECORDS)
    sft_de = next(r for r in rows if r["arm"] == "sft" and r["tgt"] == "de")
    assert float(sft_de["chrf"]) == 47.3 and float(sft_de["train_flops"]) == 3.3e13
    base_de = next(r for r in rows if r["arm"] == "base" and r["tgt"] == "de")   # the raw p and the corrected
    assert float(base_de["p_vs_sft"]) == pytest.approx(1 / 1001)
    assert float(base_de["p_vs_sft_holm"]) == pytest.approx(2 / 1001)
    k2 = next(r for r in rows if r["arm"] == "pretty-sft-k2")
    assert float(k2["off_target_undecided_rate"]) == 0.03
    assert {r["prior_source"] for r in rows} == {"", "sft", "frequent"}

    png = paths["quality_vs_cost"].read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 20_000
    pixels = imread(paths["quality_vs_cost"])[..., :3]
    panels = pixels[: int(0.85 * len(pixels))]  # above the legend
    for method_color in ("tab:gray", "tab:blue", "tab:orange", "tab:green"):  # every method is plotted
        assert (np.abs(panels - to_rgb(method_color)).max(axis=-1) < 0.02).sum() > 20, method_color


def test_report_parts_leave_records_as_loaded_and_need_no_order(run_dir):
    records = load_records(run_dir)
    loaded = copy.deepcopy(records)
    alone = render_csv(records)   # before any table: it finds the same intervals and tests itself
    quality_tables(records)
    assert records == loaded and render_csv(records) == alone
    build_report(run_dir)
    assert (run_dir / "report.csv").read_bytes() == alone.encode()
    assert "p_vs_sft_holm" in alone and "0.001998" in alone    # the corrected p of base (2 / 1001)


def test_missing_optional_fields_are_tolerated(tmp_path):
    (tmp_path / "results.jsonl").write_text(json.dumps({"arm": "base", "metrics": {"chrf": 30.0}}) + "\n")
    md = build_report(tmp_path)[0]["md"].read_text()
    assert "| base | n/a | 30.00 | n/a | n/a |" in md


def test_malformed_line_names_line_number(run_dir):
    path = run_dir / "results.jsonl"
    path.write_text(path.read_text() + "{not json\n")
    with pytest.raises(UserError, match=rf"results\.jsonl:{len(RECORDS) + 1}: "):
        build_report(run_dir)


def test_non_numeric_metric_is_rejected(tmp_path):
    (tmp_path / "results.jsonl").write_text('{"arm": "sft", "metrics": {"bleu": "high"}}\n')
    with pytest.raises(UserError, match=r"results\.jsonl:1: metrics\.bleu"):
        build_report(tmp_path)


@pytest.mark.parametrize("content", [None, "", "\n\n"])
def test_missing_or_empty_results(tmp_path, content):
    if content is not None:
        (tmp_path / "results.jsonl").write_text(content)
    with pytest.raises(UserError, match=str(tmp_path / "results.jsonl")):
        build_report(tmp_path)


def test_cli(run_dir, tmp_path_factory, capsys):
    assert cli.main(["report", str(run_dir)]) == 0
    out = capsys.readouterr().out
    assert "| pretty-sft-k1 | 13.00 |" in out and str(run_dir / "quality_vs_cost.png") in out

    assert cli.main(["report", str(tmp_path_factory.mktemp("empty"))]) == 2
    assert capsys.readouterr().err.startswith("error: ")


def test_tagging_intervals_and_paired_test():
    gold = [["DET", "NOUN", "VERB", "PUNCT"]] * 30
    refs = [" ".join(g) for g in gold]
    perfect, broken = list(refs), ["DET NOUN NOUN PUNCT"] * 30        # 100% and 75% accuracy
    half = ["DET NOUN VERB PUNCT", "oops"] * 15                        # 50%: every other item unparseable
    rows = [{"arm": a, "experiment": "x", "per_item": {"output": o, "reference": refs}}
            for a, o in (("sft", perfect), ("base", broken), ("pretty-oracle-k1", half))]
    sft, base, pretty = intervals(rows, "pos")
    assert sft.mean == pytest.approx(1.0) and sft.half_width == 0 and sft.p_vs_sft is None
    assert base.mean == pytest.approx(0.75) and base.p_vs_sft < 0.01
    assert pretty.mean == pytest.approx(0.5, abs=0.05) and 0.1 < pretty.half_width < 0.3
    # an experiment without an SFT arm still gets intervals, but no test
    alone = intervals([{**rows[1], "arm": "base"}], "pos")[0]
    assert alone.mean == pytest.approx(0.75) and alone.p_vs_sft is None


def test_holm_against_a_hand_computed_family():
    # sorted 0.005, 0.01, 0.03, 0.04 times 4, 3, 2, 1 = 0.02, 0.03, 0.06, 0.04; kept monotone: 0.06 last
    assert holm([0.01, None, 0.04, 0.03, 0.005]) == pytest.approx([0.03, None, 0.06, 0.06, 0.02])
    assert holm([0.6, 0.7]) == [1.0, 1.0] and holm([None]) == [None] and holm([0.2]) == [0.2]


def test_pareto_front_keeps_what_nothing_cheaper_beats():
    points = [(0, 30.0), (0, 35.0), (1e13, 33.0), (2e13, 45.0), (3e13, 44.0), (4e13, 47.0)]
    assert pareto_front(points) == [1, 3, 5]


def test_html_page_holds_tables_and_plots(run_dir):
    paths, _ = build_report(run_dir)
    page = paths["html"].read_text()
    assert page.startswith("<!DOCTYPE html>") and "<th>chrF ±95%</th>" not in page  # headers carry a class
    assert '<th class="num">chrF ±95%</th>' in page and "<td>pretty-frequent-k1</td>" in page
    for stem in ("quality_vs_cost", "quality_vs_examples", "quality_vs_device_hours",
                 "quality_vs_extra_steps", "quality_vs_k"):
        assert f'<img src="{stem}.png"' in page and (run_dir / f"{stem}.png").is_file()
    assert "<script" not in page and "http" not in page  # self-contained: nothing to fetch


def test_prices_add_training_cost_in_money(run_dir, capsys):
    assert cli.main(["report", str(run_dir), "--usd-per-device-hour", "3.6"]) == 0
    sft = next(l for l in (run_dir / "report.md").read_text().splitlines() if l.startswith("| sft | 18.20"))
    assert "train USD (at 3.6/device-h)" in capsys.readouterr().out and sft.endswith("| 0 | 0.29 |")  # 290 s
    build_report(run_dir)  # no price, no money column
    assert "USD" not in (run_dir / "report.md").read_text()


def test_arms_that_answer_alike_are_never_significantly_different():
    """sacreBLEU's count of strict excesses gives two systems equal on every item p = 1/1001; they differ
    nowhere, so p is 1 (a PreTTY arm copying SFT's outputs was starred "significant" against SFT)."""
    import numpy as np

    from eval.stats import micro_accuracy, paired_chrf

    hits = np.array([1.0, 0.0, 1.0, 1.0, 0.0])
    assert micro_accuracy([hits, hits.copy()], np.ones(5))[1][2] == 1.0
    assert micro_accuracy([hits, 1 - hits], np.ones(5))[1][2] < 1.0
    refs = ["a b c d", "e f g h"]
    same, other = paired_chrf([["a b c", "e f"], ["a b c", "e f"], ["x", "y"]], refs)[1:]
    assert same[2] == 1.0 and other[2] < 0.05
