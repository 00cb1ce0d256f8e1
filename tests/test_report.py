import csv
import json

import numpy as np
import pytest
from matplotlib.colors import to_rgb
from matplotlib.image import imread

from core.errors import UserError
import cli
from eval.report import build_report

ZERO_COST = {"train_examples": 0, "train_tokens": 0, "train_flops": 0, "train_wall_s": 0.0,
             "train_device_s": 0.0, "train_peak_mem_mb": 0.0, "eval_wall_s": 60.0}
SFT_COST = {"train_examples": 256, "train_tokens": 20480, "train_flops": 3.3e13, "train_wall_s": 300.0,
            "train_device_s": 290.0, "train_peak_mem_mb": 5000.0, "eval_wall_s": 60.0}
LORA_COST = {**SFT_COST, "train_flops": 2.2e13, "train_wall_s": 200.0, "train_peak_mem_mb": 3000.0}


def record(arm, method, bleu, chrf, off, cost, tgt="de", prior=None, steps=0):
    samples = [{"id": f"{tgt}-{i}", "source": f"Source sentence {i}.", "reference": f"Referenz {i}.",
                "output": f"{arm} output {i}.", "prior": "Das" if prior else None} for i in range(5)]
    return {"experiment": "demo", "arm": arm, "method": method, "task": "mt", "src": "en", "tgt": tgt,
            "metrics": {"bleu": bleu, "chrf": chrf, "off_target_rate": off},
            "signatures": {"bleu": "nrefs:1|tok:13a|version:2.6.0", "chrf": "nrefs:1|nc:6|version:2.6.0"},
            "n_items": 100, "samples": samples, "prior": prior,
            "weights": {"path": "/ckpt", "sha256": "abc"}, "config_hash": "cfg123", "git_rev": "deadbeef",
            "cost": {**cost, "extra_decode_steps_per_item": steps, "extra_model_calls_per_item": steps}}


RECORDS = [  # deliberately out of reading order
    record("pretty-sft-k2", "pretty", 14.1, 41.7, 0.04, SFT_COST, prior={"source": "sft", "k": 2}, steps=2),
    record("sft", "sft", 18.2, 47.3, 0.01, SFT_COST),
    record("pretty-frequent-k1", "pretty", 9.9, 37.5, 0.12, ZERO_COST, prior={"source": "frequent", "k": 1},
           steps=1),
    record("base", "base", 8.4, 35.2, 0.31, ZERO_COST),
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
    paths = build_report(run_dir)
    assert set(paths) == {"md", "csv", "png", "k_png"}  # k_png: the records have PreTTY arms
    assert all(p.parent == run_dir and p.is_file() for p in paths.values())

    md = paths["md"].read_text()
    assert "# Cost vs quality: demo" in md and "deadbeef" in md and "cfg123" in md
    assert "## mt: English → German (100 items)" in md and "## mt: English → Chinese" in md
    assert "| sft | 18.20 | 47.30 | 1.0 | 256 | 20480 | 3.3e13 | 300.0 | 290.0 | 5000 | 0 |" in md
    assert "| pretty-sft-k2 | 14.10 | 41.70 | 4.0 | 256 | 20480 | 3.3e13 | 300.0 | 290.0 | 5000 | 2 |" in md
    assert "| base | 8.40 | 35.20 | 31.0 | 0 | 0 | 0 | 0.0 | 0.0 | 0 | 0 |" in md
    assert "`nrefs:1|tok:13a|version:2.6.0`" in md

    german = md.split("## mt: English → German")[1].split("##")[0]
    order = ["base", "lora", "sft", "pretty-frequent-k1", "pretty-sft-k1", "pretty-sft-k2"]
    assert [german.index(f"| {arm} |") for arm in order] == sorted(german.index(f"| {arm} |") for arm in order)

    samples = md.split("## Samples")[1]
    assert samples.count("output: pretty-sft-k1 output") == 3
    assert 'prior: "Das"' in samples

    rows = list(csv.DictReader(paths["csv"].open()))
    assert len(rows) == len(RECORDS)
    sft_de = next(r for r in rows if r["arm"] == "sft" and r["tgt"] == "de")
    assert float(sft_de["chrf"]) == 47.3 and float(sft_de["train_flops"]) == 3.3e13
    assert {r["prior_source"] for r in rows} == {"", "sft", "frequent"}

    png = paths["png"].read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 20_000
    pixels = imread(paths["png"])[..., :3]
    panels = pixels[: int(0.85 * len(pixels))]  # above the legend
    for method_color in ("tab:gray", "tab:blue", "tab:orange", "tab:green"):  # every method is plotted
        assert (np.abs(panels - to_rgb(method_color)).max(axis=-1) < 0.02).sum() > 20, method_color


def test_missing_optional_fields_are_tolerated(tmp_path):
    (tmp_path / "results.jsonl").write_text(json.dumps({"arm": "base", "metrics": {"chrf": 30.0}}) + "\n")
    md = build_report(tmp_path)["md"].read_text()
    assert "| base | n/a | 30.00 | n/a |" in md


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
