"""Uncertainty and pay-back for the report, from the records alone.

Confidence intervals and significance come from the outputs and references each record keeps (`per_item`):
a 95% bootstrap interval of every arm's score and a paired bootstrap test of each arm against the SFT arm of
the same experiment (Koehn, 2004; 1,000 resamples, seeded), Holm-corrected over the tests of one table (many
arms are each tested against SFT). Translation goes through sacreBLEU's own paired bootstrap, which
recomputes corpus chrF on every resample; tagging resamples sentences the same way and recomputes the
micro-averaged UPOS accuracy.

Break-even: a training arm pays its training once, a PreTTY arm pays its prior on every item. After
N = (training device-seconds) / (PreTTY's extra device-seconds per item over the base arm) evaluated items the
two have cost the same compute.
"""
from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass

import numpy as np
from sacrebleu.metrics import CHRF
from sacrebleu.significance import PairedTest, estimate_ci

from eval.conductivity import answered
from eval.pos import gold_of, score_references
from eval.records import (Record, by_experiment, cost, deployable, label, method, reference_arm,
                           training_cost_known)

RESAMPLES = 1000
SEED = 12345  # sacreBLEU's default seed, so both tasks resample alike


@dataclass(frozen=True)
class Interval:
    mean: float          # bootstrap mean (the metric's scale: chrF 0-100, accuracy 0-1)
    half_width: float    # of the 95% interval
    p_vs_sft: float | None  # paired test against the SFT arm; None for SFT itself or when there is none


def _outputs(r: Record) -> tuple[list[str] | None, list[str] | None]:
    per_item = r.get("per_item") or {}
    return per_item.get("output"), per_item.get("reference")


def intervals(rows: list[Record], task: str) -> list[Interval | None]:
    """An interval per row (None where the record keeps no outputs, or scored other references than the
    arm it is compared with). Rows of one experiment are compared with that experiment's SFT arm."""
    out: list[Interval | None] = [None] * len(rows)
    by_experiment: dict[str, list[int]] = defaultdict(list)
    for i, r in enumerate(rows):
        if _outputs(r)[0] is not None:
            by_experiment[r.get("experiment") or ""].append(i)
    for members in by_experiment.values():
        sft = next((i for i in members if rows[i]["arm"] == "sft"), None)
        anchor = members[0] if sft is None else sft
        refs = _outputs(rows[anchor])[1]
        order = [anchor] + [i for i in members if i != anchor and _outputs(rows[i])[1] == refs]
        systems = [_outputs(rows[i])[0] for i in order]
        scored = {"mt": _translation, "knowledge": _choice, "conductivity": _contains}.get(task, _tagging)(systems, refs)
        for i, (mean, half_width, p) in zip(order, scored):
            out[i] = Interval(mean, half_width, None if sft is None or i == sft else p)
    return out


def _translation(systems: list[list[str]], refs: list[str]) -> list[tuple[float, float, float | None]]:
    named = [(str(j), hyps) for j, hyps in enumerate(systems)]
    _, scores = PairedTest(named, {"chrf": CHRF()}, [refs], test_type="bs", n_samples=RESAMPLES)()
    (results,) = [v for k, v in scores.items() if k != "System"]
    return [(float(r.mean), float(r.ci), r.p_value) for r in results]


def _tagging(systems: list[list[str]], refs: list[str]) -> list[tuple[float, float, float | None]]:
    words = np.array([len(gold_of(r)[1]) for r in refs], dtype=float)
    return _resampled([np.array(score_references(hyps, refs)["per_item"]["accuracy"]) * words for hyps in systems],
                      words)


def _choice(systems: list[list[str]], refs: list[str]) -> list[tuple[float, float, float | None]]:
    """Multiple choice: an item is right when its output equals its reference. The evaluator writes both as the
    option's letter and text ("B. Paris"), equal exactly when the option index is, so this counts the same items
    right as the record's per_item.correct (older records kept the bare option text)."""
    return _resampled([np.array([h == r for h, r in zip(hyps, refs)], dtype=float) for hyps in systems],
                      np.ones(len(refs)))


def _contains(systems: list[list[str]], refs: list[str]) -> list[tuple[float, float, float | None]]:
    """Conductivity: an answer is right when it names the expected continent."""
    return _resampled([np.array([answered(h, r) for h, r in zip(hyps, refs)], dtype=float) for hyps in systems],
                      np.ones(len(refs)))


def _resampled(hits: list[np.ndarray], words: np.ndarray) -> list[tuple[float, float, float | None]]:
    """Bootstrap over items of micro-averaged accuracy (hits / words); the first system is the anchor."""
    resamples = np.random.default_rng(SEED).choice(len(words), size=(RESAMPLES, len(words)), replace=True)
    sampled = [h[resamples].sum(axis=1) / words[resamples].sum(axis=1) for h in hits]
    actual = [h.sum() / words.sum() for h in hits]
    out = []
    for j, scores in enumerate(sampled):
        mean, half_width = estimate_ci(scores)
        p = None
        if j > 0:  # as sacreBLEU (after Moses/MultEval): how often a resampled gap exceeds the observed one
            gaps = np.abs(scores - sampled[0])
            p = (np.sum(gaps - gaps.mean() > abs(actual[j] - actual[0])).item() + 1) / (RESAMPLES + 1)
        out.append((float(mean), float(half_width), p))
    return out


def holm(pvalues: list[float | None]) -> list[float | None]:
    """Holm's step-down adjustment over the p-values given (one family; None, an untested row, stays None and
    does not count): the i-th smallest of m is multiplied by m - i + 1, kept monotone and capped at 1."""
    tested = sorted((p, i) for i, p in enumerate(pvalues) if p is not None)
    adjusted: list[float | None] = [None] * len(pvalues)
    running = 0.0
    for rank, (p, i) in enumerate(tested):
        running = max(running, min(1.0, (len(tested) - rank) * p))
        adjusted[i] = running
    return adjusted


@dataclass(frozen=True)
class BreakEven:
    trained: str          # training arm
    pretty: str           # PreTTY arm it is set against
    train_device_s: float
    extra_s_per_item: float
    items: float          # math.inf when the prior costs nothing measurable per item


def break_even(rows: list[Record]) -> list[BreakEven]:
    """Within each experiment, every training arm against every deployable PreTTY arm that did not itself pay
    for that training, the per-item overhead timed against that experiment's own base arm. Arms whose training
    cost is unknown have nothing to weigh and are left out, as are upper bounds (oracle priors)."""
    out = []
    for members in by_experiment(rows).values():
        base = reference_arm(members)
        if base is None or method(base) != "base" or not cost(base, "eval_wall_s") or not base.get("n_items"):
            continue
        base_per_item = cost(base, "eval_wall_s") / base["n_items"]
        weighed = [r for r in members if deployable(r) and training_cost_known(r)]
        for t in weighed:
            if method(t) in ("base", "pretty") or not cost(t, "train_device_s"):
                continue
            for p in weighed:
                if method(p) != "pretty" or not p.get("n_items") or cost(p, "eval_wall_s") is None:
                    continue
                own = cost(p, "train_device_s") or 0.0
                if own >= cost(t, "train_device_s"):
                    continue  # a prior from that very training (or a dearer one) never pays back
                extra = cost(p, "eval_wall_s") / p["n_items"] - base_per_item
                paid = cost(t, "train_device_s") - own
                items = paid / extra if extra > 0 else math.inf
                out.append(BreakEven(label(t), label(p), paid, extra, items))
    return out
