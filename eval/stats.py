"""Every bootstrap, interval and paired test of the report, on plain arrays (the report decides what is
resampled: eval/report_stats.py, eval/report_knowledge.py).

Items are resampled with replacement, RESAMPLES times from one seeded generator, so every system scored on
the same items sees the same resamples (a paired bootstrap, Koehn 2004). Translation goes through sacreBLEU's
own paired bootstrap, which recomputes corpus chrF on every resample; accuracies are micro-averaged (hits /
words) on every resample. A family of tests against one anchor is Holm-corrected.
"""
from __future__ import annotations

import numpy as np
from sacrebleu.metrics import CHRF
from sacrebleu.significance import PairedTest, estimate_ci

RESAMPLES = 1000
# sacreBLEU's default seed (its paired bootstrap reads SACREBLEU_SEED, not this), so all tasks resample alike
SEED = 12345

Scored = tuple[float, float, float | None]   # bootstrap mean, half-width of the 95% interval, p vs the anchor


def resample_indices(n: int) -> np.ndarray:
    """(RESAMPLES, n) item indices drawn with replacement, the same on every call: a paired bootstrap."""
    # integers(0, n) draws the very stream choice(n, replace=True) does: both kinds of interval agree
    return np.random.default_rng(SEED).integers(0, n, size=(RESAMPLES, n))


def micro_accuracy(hits: list[np.ndarray], words: np.ndarray) -> list[Scored]:
    """Bootstrap over items of the micro-averaged accuracy hits / words of each system (hits per item, words
    per item: 1 each for a plain accuracy); the first system is the anchor the others are tested against."""
    resamples = resample_indices(len(words))
    sampled = [h[resamples].sum(axis=1) / words[resamples].sum(axis=1) for h in hits]
    actual = [h.sum() / words.sum() for h in hits]
    out = []
    for j, scores in enumerate(sampled):
        mean, half_width = estimate_ci(scores)
        p = None
        if j > 0:
            p = 1.0 if np.array_equal(hits[j], hits[0]) else \
                paired_p_value(scores, sampled[0], actual[j] - actual[0])
        out.append((float(mean), float(half_width), p))
    return out


def paired_p_value(scores: np.ndarray, anchor: np.ndarray, observed: float) -> float:
    """As sacreBLEU (after Moses/MultEval): how often a resampled gap, centred, exceeds the observed one;
    add-one smoothed, so never 0. Two systems scored alike on every item would get 1/1001 ("significant")
    from this count of strict excesses: the callers give them p = 1, as they differ nowhere."""
    gaps = np.abs(scores - anchor)
    return (np.sum(gaps - gaps.mean() > abs(observed)).item() + 1) / (RESAMPLES + 1)



def paired_chrf(systems: list[list[str]], refs: list[str]) -> list[Scored]:
    """sacreBLEU's paired bootstrap of corpus chrF (recomputed on every resample); the first system is the
    anchor, whose p is None."""
    named = [(str(j), hyps) for j, hyps in enumerate(systems)]
    _, scores = PairedTest(named, {"chrf": CHRF()}, [refs], test_type="bs", n_samples=RESAMPLES)()
    (results,) = [v for k, v in scores.items() if k != "System"]
    return [(float(r.mean), float(r.ci), None if j == 0 else 1.0 if hyps == systems[0] else r.p_value)
            for j, (r, hyps) in enumerate(zip(results, systems))]


def paired_resamples(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Two per-item arrays over the same items, resampled alike: two (RESAMPLES, n) arrays."""
    idx = resample_indices(len(x))
    return x[idx], y[idx]


def percentile_interval(values: np.ndarray) -> tuple[float, float] | None:
    """The 2.5th and 97.5th percentiles of resampled values; None when every one is undefined (NaN). A value
    of +inf (an undefined ratio that grows without bound) counts as the largest float, so a bound above 1e300
    stands for ∞."""
    values = np.nan_to_num(values[~np.isnan(values)], posinf=np.finfo(float).max)
    if not len(values):
        return None
    lo, hi = np.percentile(values, [2.5, 97.5])
    return float(lo), float(hi)


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
