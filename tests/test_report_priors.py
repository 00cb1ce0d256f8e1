from eval.report_priors import recovery_tables, render_k_plot


def render_recovery(records):
    return "\n".join(t.markdown(3) for t in recovery_tables(records))


def rec(arm, method, chrf, prior=None, task="mt", tgt="de"):
    metric = {"chrf": chrf} if task == "mt" else {"upos_accuracy": chrf}
    return {"arm": arm, "method": method, "task": task, "src": "en", "tgt": tgt, "metrics": metric, "prior": prior}


RECORDS = [
    rec("base", "base", 20.0), rec("sft", "sft", 40.0),
    rec("pretty-frequent-k1", "pretty", 30.0, {"source": "frequent", "k": 1}),
    rec("pretty-frequent-k2", "pretty", 34.0, {"source": "frequent", "k": 2}),
    rec("pretty-oracle-k1", "pretty", 38.0, {"source": "oracle", "k": 1}),
    rec("base", "base", 0.2, task="pos"), rec("sft", "sft", 0.8, task="pos"),
    rec("pretty-oracle-k1", "pretty", 0.6, {"source": "oracle", "k": 1}, task="pos"),
]


def test_recovery_is_the_share_of_sft_with_base_as_k0():
    md = render_recovery(RECORDS)
    assert "chrF as % of SFT's (40); base = 50%" in md
    assert "| frequent | 50% | 75% | 85% |" in md     # k=0 is the base arm
    assert "| oracle (upper bound) | 50% | 95% |  |" in md
    assert "UPOS accuracy as % of SFT's (0.8)" in md and "| oracle (upper bound) | 25% | 75% |" in md


def test_no_priors_no_section_and_no_plot():
    plain = [r for r in RECORDS if r["method"] != "pretty"]
    assert render_recovery(plain) == "" and render_k_plot(plain) is None


def test_k_plot_is_a_png():
    png = render_k_plot(RECORDS)
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000


def test_a_prior_that_says_it_is_not_deployable_is_an_upper_bound():
    leaky = rec("pretty-sft-k1", "pretty", 36.0, {"source": "sft", "k": 1, "deployable": False})
    md = render_recovery([rec("base", "base", 20.0), rec("sft", "sft", 40.0), leaky])
    assert "| sft (upper bound) | 50% | 90% |" in md
