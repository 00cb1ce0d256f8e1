from eval.report_priors import recovery_tables, render_k_plot


def render_recovery(records):
    return "\n".join(t.markdown(3) for t in recovery_tables(records))


def rec(arm, method, chrf, prior=None, task="mt", tgt="de"):
    metric = {"chrf": chrf} if task == "mt" else {"upos_accuracy": chrf}
    return {"arm": arm, "method": method, "task": task, "src": "en", "tgt": tgt, "metrics": metric,
            "prior": prior}


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


def test_gap_closed_is_the_headline_with_base_at_0_and_sft_at_100():
    tables = recovery_tables(RECORDS)
    gap, share = tables[0].markdown(3), tables[1].markdown(3)
    assert "share of the chrF gap closed (base 20 → SFT 40)" in gap
    assert "| frequent | 0% | 50% | 70% |" in gap and "| oracle (upper bound) | 0% | 90% |  |" in gap
    assert "(PreTTY − base) / (SFT − base)" in tables[0].note
    assert "% of SFT's (40)" in share and "floor is the base arm's share" in tables[1].note
    # UPOS: (0.6 - 0.2) / (0.8 - 0.2)
    assert "| oracle (upper bound) | 0% | 67% |" in render_recovery(RECORDS)


def test_gap_closed_is_negative_below_base_and_na_unless_sft_beats_base():
    worse = rec("pretty-frequent-k1", "pretty", 15.0, {"source": "frequent", "k": 1})
    assert "| frequent | 0% | -25% |" in render_recovery([rec("base", "base", 20.0), rec("sft", "sft", 40.0),
                                                          worse])
    md = render_recovery([rec("base", "base", 40.0), rec("sft", "sft", 30.0), worse])
    assert "| frequent | n/a | n/a |" in md and "% of SFT's (30); base = 133%" in md


def test_gap_closed_pairs_arms_within_one_experiment():
    pretty = {"source": "frequent", "k": 1}
    sweep = [{**r, "experiment": name} for name, rows in (
        ("budget64", [rec("base", "base", 20.0), rec("sft", "sft", 40.0), rec("p", "pretty", 30.0, pretty)]),
        ("budget1024", [rec("base", "base", 10.0), rec("sft", "sft", 20.0),
                        rec("p", "pretty", 12.5, pretty)]))
        for r in rows]
    gaps = [t for t in recovery_tables(sweep) if "gap closed" in t.title]
    assert [t.title.split(":")[0] for t in gaps] == ["mt en→de (budget1024)", "mt en→de (budget64)"]
    assert [t.rows for t in gaps] == [[["frequent", "0%", "25%"]], [["frequent", "0%", "50%"]]]


def test_priors_from_two_models_are_two_curves_against_the_experiments_own_base():
    outside = rec("other", "base", 5.0)          # an outside model listed first: not the reference
    two = [outside, rec("base", "base", 20.0), rec("sft", "sft", 40.0), rec("sft2", "sft", 30.0),
           rec("pretty-sft-k1", "pretty", 30.0, {"source": "sft", "k": 1, "from_arm": "sft"}),
           rec("p2", "pretty", 25.0, {"source": "sft", "k": 1, "from_arm": "sft2"})]
    gap = recovery_tables(two)[0].markdown(3)
    assert "base 20 → SFT 40" in gap
    assert "| sft | 0% | 50% |" in gap and "| sft (sft2) | 0% | 25% |" in gap
