"""Uncertainty and pay-back for the report, from the records alone.

Confidence intervals and significance come from the outputs and references each record keeps (`per_item`):
a 95% bootstrap interval of every arm's score and a paired bootstrap test of each arm against the SFT arm of
the same experiment, Holm-corrected over the tests of one table (many arms are each tested against SFT); the
statistics themselves are eval.stats'. Here: which arms are compared, and what an item scores. Translation
is scored by corpus chrF; tagging by the words tagged right (micro-averaged UPOS accuracy); multiple choice
and conductivity by right answers.

Break-even: a training arm pays its training once, a PreTTY arm pays its prior on every item (an icl arm its
demonstrations' prefill, a nudge arm the aligned model's passes). After N = (training device-seconds) / (the
arm's extra device-seconds per item over the base arm) evaluated items the two have cost the same compute.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from types import MappingProxyType
from typing import Mapping

import numpy as np

from eval.conductivity import answered
from eval.pos import gold_of, score_references
from eval.records import (Record, by_experiment, cost, deployable, grouped, groups, label, method,
                           reference_arm, spans_experiments, training_cost_known)
from eval.stats import Scored, holm, micro_accuracy, paired_chrf
from tasks import TASKS


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
    kept = [i for i, r in enumerate(rows) if _outputs(r)[0] is not None]
    for members in grouped(kept, lambda i: rows[i].get("experiment") or "").values():
        sft = next((i for i in members if rows[i]["arm"] == "sft"), None)
        anchor = members[0] if sft is None else sft
        refs = _outputs(rows[anchor])[1]
        order = [anchor] + [i for i in members if i != anchor and _outputs(rows[i])[1] == refs]
        systems = [_outputs(rows[i])[0] for i in order]
        scored = _SCORERS[TASKS[task].resample if task in TASKS else "exact"](systems, refs)
        for i, (mean, half_width, p) in zip(order, scored):
            out[i] = Interval(mean, half_width, None if sft is None or i == sft else p)
    return out


def _tagging(systems: list[list[str]], refs: list[str]) -> list[Scored]:
    words = np.array([len(gold_of(r)[1]) for r in refs], dtype=float)
    return micro_accuracy([np.array(score_references(hyps, refs)["per_item"]["accuracy"]) * words
                           for hyps in systems], words)


def _choice(systems: list[list[str]], refs: list[str]) -> list[Scored]:
    """Multiple choice: an item is right when its output equals its reference. The evaluator writes both as
    the option's letter and text ("B. Paris"), equal exactly when the option index is, so this counts the same
    items right as the record's per_item.correct (older records kept the bare option text)."""
    return micro_accuracy([np.array([h == r for h, r in zip(hyps, refs)], dtype=float) for hyps in systems],
                          np.ones(len(refs)))


def _contains(systems: list[list[str]], refs: list[str]) -> list[Scored]:
    """Conductivity: an answer is right when it names the expected continent."""
    return micro_accuracy([np.array([answered(h, r) for h, r in zip(hyps, refs)], dtype=float)
                           for hyps in systems], np.ones(len(refs)))


# how a task's items are scored on a resample: its registered task's `resample`; a task no process registered
# here (a plugin's, read without it): output equals reference
_SCORERS = {"chrf": paired_chrf, "tagging": _tagging, "exact": _choice, "contains": _contains}


@dataclass(frozen=True)
class Tested:
    interval: Interval | None
    p_holm: float | None    # p vs SFT, Holm-corrected over the tests of the record's table


class Significance:
    """Each record's interval and Holm-corrected p vs SFT, computed once for a report and looked up by the
    record itself: records stay as loaded, and every table or file that shows these reads the same numbers,
    in whatever order they are written."""

    def __init__(self, records: list[Record], many: bool | None = None):
        many = spans_experiments(records) if many is None else many
        found: dict[int, tuple[Record, Tested]] = {}
        for (task, _, _), rows in groups(records, many).items():
            found_here = intervals(rows, task)
            # one family per table: every arm tested against SFT there
            adjusted = holm([ci and ci.p_vs_sft for ci in found_here])
            for r, ci, p in zip(rows, found_here, adjusted):
                found[id(r)] = (r, Tested(ci, p))   # the record kept too: its id is not reused meanwhile
        self._by_id: Mapping[int, tuple[Record, Tested]] = MappingProxyType(found)

    def of(self, r: Record) -> Tested:
        """The record's, or nothing for a record the report did not test (another seed of an arm)."""
        found = self._by_id.get(id(r))
        return found[1] if found is not None and found[0] is r else Tested(None, None)


# arms that pay on every item instead of (or beside) training: a prior, demonstrations' prefill, nudging
PER_ITEM = ("pretty", "icl", "nudge")


@dataclass(frozen=True)
class BreakEven:
    trained: str          # training arm
    pretty: str           # the per-item arm (PreTTY, icl, nudge) it is set against
    train_device_s: float
    extra_s_per_item: float
    items: float          # math.inf when the prior costs nothing measurable per item


def break_even(rows: list[Record], many: bool | None = None) -> list[BreakEven]:
    """Within each experiment, every training arm against every deployable PreTTY arm that did not itself pay
    for that training, the per-item overhead timed against that experiment's own base arm. Arms whose training
    cost is unknown have nothing to weigh and are left out, as are upper bounds (oracle priors). `many`:
    whether arms are labelled with their experiment (None: whether these rows span several)."""
    many = spans_experiments(rows) if many is None else many
    out = []
    for members in by_experiment(rows).values():
        base = reference_arm(members)
        if base is None or method(base) != "base" or not cost(base, "eval_wall_s") or not base.get("n_items"):
            continue
        base_per_item = cost(base, "eval_wall_s") / base["n_items"]
        weighed = [r for r in members if deployable(r) and training_cost_known(r)]
        for t in weighed:
            if method(t) in ("base", *PER_ITEM) or not cost(t, "train_device_s"):
                continue
            for p in weighed:
                if method(p) not in PER_ITEM or not p.get("n_items") or cost(p, "eval_wall_s") is None:
                    continue
                own = cost(p, "train_device_s") or 0.0
                if own >= cost(t, "train_device_s"):
                    continue  # a prior from that very training (or a dearer one) never pays back
                extra = cost(p, "eval_wall_s") / p["n_items"] - base_per_item
                paid = cost(t, "train_device_s") - own
                items = paid / extra if extra > 0 else math.inf
                out.append(BreakEven(label(t, many), label(p, many), paid, extra, items))
    return out
