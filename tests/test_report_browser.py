"""The report page as a person sees it: opened in headless Chromium (Debian's), it loads every plot and logs
no console error. Skipped only where no chromium is installed (./launch.sh test installs it when it can)."""
import json
import shutil

import pytest

from eval.report import build_report
from tests.test_report import RECORDS

CHROMIUM = shutil.which("chromium")


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium on PATH (apt-get install chromium)")
def test_report_page_loads_with_its_plots_and_no_errors(tmp_path):
    from playwright.sync_api import sync_playwright

    (tmp_path / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in RECORDS))
    paths, _ = build_report(tmp_path)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1300, "height": 900})
        errors = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(paths["html"].as_uri())
        page.wait_for_load_state("load")
        images = page.evaluate(
            "Array.from(document.images).map(i => [i.getAttribute('src'), i.naturalWidth])")
        tables = page.locator("table").count()
        page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
        browser.close()
    assert not errors
    plots = sorted(f"{stem}.png" for stem in paths if stem.startswith("quality_vs"))
    assert sorted(src for src, _ in images) == plots
    assert all(width > 400 for _, width in images)   # decoded, not a broken-image icon
    assert tables >= 4                                 # two quality tables, recovery, break-even (+ samples)
    assert (tmp_path / "report.png").stat().st_size > 50_000


def test_record_texts_are_escaped_on_the_page(tmp_path):
    """Arm names and samples come from results files: the page shows them as text, never runs them."""
    hostile = {**RECORDS[1], "arm": "<b>bold</b>", "tgt": "fr",
               "samples": [{"id": "<i>1</i>", "source": "a & b", "reference": '"q"',
                            "output": "<script>alert(1)</script>", "prior": None}]}
    (tmp_path / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in RECORDS + [hostile]))
    page = build_report(tmp_path)[0]["html"].read_text()
    assert "<script" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<b>bold</b>" not in page and "&lt;b&gt;bold&lt;/b&gt;" in page
    assert "<i>1</i>" not in page and "a &amp; b" in page
