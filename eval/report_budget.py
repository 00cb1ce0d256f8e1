"""The budget part of the report: which use of one labelled-data budget wins (the best training arm against
the best training-free arm, each chosen on the dev split and compared on the test split), how much of a nudged
answer the aligned model wrote and where, and quality against the number of in-context examples.

Choosing on dev and testing on test keeps the comparison honest: an arm picked for its test score would win
the test by selection alone."""
from __future__ import annotations

import io
import re
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from matplotlib.ticker import FixedLocator, NullLocator

from eval.records import (Record, by_experiment, cost, deployable, direction, grouped, groups, is_extra_seed,
                           label, method, quality, quality_of, reference_arm, spans_experiments,
                           training_cost_known, unit)
from eval.report_plots import panel_grid
from eval.report_stats import _SCORERS, _outputs
from eval.stats import holm
from eval.tables import Table, flops_text
from tasks import TASKS

ALPHA = 0.05
NO_DEV = "no dev records: run with --split dev"
UPPER = " (upper bound)"


# ---------------------------------------------------------------- kinds of arm

def is_training_arm(r: Record) -> bool:
    """Deployable, its training cost known and above 0 FLOPs: sft, lora, cpt, mixed, and any arm built on a
    trained model (a PreTTY prior or a nudge from an SFT arm, icl on a trained model) since those carry the
    training they stand on."""
    flops = cost(r, "train_flops")
    return (method(r) != "base" and deployable(r) and training_cost_known(r)
            and flops is not None and flops > 0)


def is_training_free_arm(r: Record) -> bool:
    """Deployable, 0 training FLOPs, and spending the budget (train_examples > 0: the examples are shots or
    the source of a prior). The base arm spends nothing; an upper bound (oracle prior) is not deployable."""
    examples = cost(r, "train_examples")
    return (method(r) != "base" and deployable(r) and training_cost_known(r)
            and cost(r, "train_flops") == 0 and examples is not None and examples > 0)


def _not_dev(records: list[Record]) -> list[Record]:
    return [r for r in records if r.get("split") != "dev" and not is_extra_seed(r)]


def _natural(text: str) -> list:
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", text)]   # budget64 before budget1024


def _key(r: Record) -> tuple:
    return (r.get("experiment") or "", r["arm"], *unit(r))


# ---------------------------------------------------------------- formatting

def _quality_text(task: str, rows: list[Record]):
    judged_by = quality_of(task, rows)

    def text(q: float | None) -> str:
        if q is None:
            return "n/a"
        return f"{q:.2f}" if judged_by.scale > 1 else f"{100 * q:.1f}%"
    return text


def _g(v: Any, fmt: str = "g") -> str:
    return "n/a" if v is None else format(v, fmt)


def _training_cell(r: Record) -> str:
    return (f"{flops_text(cost(r, 'train_flops'))}; {_g(cost(r, 'train_device_s'), '.0f')}; "
            f"{_g(cost(r, 'train_examples'), '.0f')}")


def _per_item_cell(r: Record) -> str:
    return f"{_g(cost(r, 'extra_prompt_tokens_per_item'))}; {_g(cost(r, 'extra_decode_steps_per_item'))}"


def _p_text(p: float | None) -> str:
    return "n/a" if p is None else f"{p:.3f}" + ("*" if p < ALPHA else "")


# ---------------------------------------------------------------- which use of the budget wins

@dataclass
class Choice:
    """The dev-chosen arm of one kind in one row: None with `why` when nothing could be chosen."""
    test: Record | None
    dev: Record | None
    why: str = ""
    left_out: tuple[str, ...] = ()   # arms of this kind without a dev record: not candidates


def _choose(candidates: list[Record], dev: dict[tuple, Record]) -> Choice:
    """Best dev quality; ties to the cheaper (training FLOPs, then extra prompt tokens per item), then the
    name. Never the test quality: without dev records nothing is chosen."""
    scored = [(r, dev[_key(r)]) for r in candidates if _key(r) in dev and quality(dev[_key(r)]) is not None
              and same_run(r, dev[_key(r)])]
    chosen_from = {id(r) for r, _ in scored}
    left_out = tuple(sorted(r["arm"] for r in candidates if id(r) not in chosen_from))
    if not scored:
        return Choice(None, None, "no dev records", left_out)
    test, on_dev = min(scored, key=lambda pair: (-quality(pair[1]), cost(pair[0], "train_flops") or 0,
                                                 cost(pair[0], "extra_prompt_tokens_per_item") or 0,
                                                 cost(pair[0], "extra_decode_steps_per_item") or 0,
                                                 _natural(pair[0]["arm"])))
    return Choice(test, on_dev, left_out=left_out)


def _hashes(r: Record) -> tuple:
    weights = r.get("weights") or {}
    return (r.get("config_hash"), r.get("train_data_sha256"), weights.get("sha256"),
            *((weights.get(k) or {}).get("sha256") for k in ("base", "prior", "aligned")))


def same_run(test: Record, dev: Record) -> bool:
    """Whether a dev record describes the test record's arm as it is now: the same config, training data and
    weights (a dev/ folder left from before a retraining, or from another config, chooses nothing)."""
    return _hashes(test) == _hashes(dev)


def paired_p(first: Record, second: Record, task: str) -> float | None:
    """p of `second` against `first` on their test items, by the task's resampling scorer (as the quality
    tables' intervals); None unless both kept outputs for the same references."""
    (out_a, refs_a), (out_b, refs_b) = _outputs(first), _outputs(second)
    if out_a is None or out_b is None or refs_a != refs_b:
        return None
    scorer = _SCORERS[TASKS[task].resample if task in TASKS else "exact"]
    return scorer([out_a, out_b], refs_a)[1][2]


WINNER_NOTE = (
    "Training arm: a deployable arm whose training cost is known and above 0 FLOPs (sft, lora, cpt, "
    "mixed, and arms built on a trained model: PreTTY or nudging from an SFT arm, in-context examples on "
    "a trained model). Training-free arm: a deployable arm with 0 training FLOPs that spends the budget "
    "(train examples > 0): in-context examples (icl), PreTTY with frequent priors or a dictionary induced"
    " from the budget, PreTTY + icl. The base arm (no budget) and upper bounds (oracle priors, not "
    "deployable) are neither. Each kind's arm is chosen by its quality on the dev split (ties: fewer "
    "training FLOPs, then fewer extra prompt tokens, then fewer extra decode steps per item, then the "
    "name) and compared on the test split, so the test never chooses; a row without current dev records "
    "for a kind (same config, training data and weights as the test record) chooses nothing. T/F: the "
    "chosen training / training-free arm. Training: FLOPs; device-seconds; labelled examples (a training "
    "arm learns every task direction's budget at once, so it may count several directions' examples; a "
    "training-free arm uses its own direction's). Per item: extra prompt tokens; extra decode steps. p F "
    "vs T: paired bootstrap of the training-free arm against the training arm on the test items, "
    "Holm-corrected over the {family} test{plural} of this table (* below 0.05); the winner is the arm "
    "with the higher test quality where the corrected p is below 0.05.")


def winner_tables(records: list[Record], dev_records: list[Record], many: bool | None = None) -> list[Table]:
    """Per task, one row per unit and experiment (a sweep's experiment is one budget): the dev-chosen
    training arm against the dev-chosen training-free arm on test. `records`: the test records;
    `dev_records`: the same experiments' dev records (matched by experiment, arm, task, src, tgt); `many`:
    whether the experiment is shown (None: whether the records span several). [] when no unit has both
    kinds on test."""
    records = _not_dev(records)
    many = spans_experiments(records) if many is None else many
    dev = {}
    for r in dev_records:
        if r.get("split") != "test" and not is_extra_seed(r):
            dev.setdefault(_key(r), r)
    rows_by_task: dict[str, list[tuple]] = defaultdict(list)
    for (task, src, tgt), rows in groups(records, many).items():
        for experiment, members in sorted(by_experiment(rows).items(), key=lambda e: _natural(e[0])):
            trained = [r for r in members if is_training_arm(r)]
            free = [r for r in members if is_training_free_arm(r)]
            if trained and free:
                rows_by_task[task].append((src, tgt, experiment, _choose(trained, dev), _choose(free, dev)))
    tables = []
    for task, found in rows_by_task.items():
        every = [r for *_, t, f in found for r in (t.test, f.test) if r is not None]
        text = _quality_text(task, every or records)
        ps = [paired_p(t.test, f.test, task) if t.test and f.test else None for *_, t, f in found]
        adjusted = holm(ps)
        family = sum(p is not None for p in ps)
        name = quality_of(task, records).label
        left_out = any(t.left_out or f.left_out for *_, t, f in found)
        header = (["direction"] + (["experiment"] if many else [])
                  + ["training arm (T)", f"T dev {name}", f"T test {name}", "T training", "T per item",
                     "training-free arm (F)", f"F dev {name}", f"F test {name}", "F training", "F per item",
                     "p F vs T (Holm)", "winner"] + (["left out (no dev record)"] if left_out else []))
        out = []
        for (src, tgt, experiment, t, f), p in zip(found, adjusted):
            cells = [direction(src, tgt)] + ([experiment] if many else [])
            if t.test is None or f.test is None:
                cells += ([t.why or "—"] + [""] * 4 + [f.why or "—"] + [""] * 4 + ["", NO_DEV])
            else:
                for c in (t, f):
                    cells += [c.test["arm"], text(quality(c.dev)), text(quality(c.test)),
                              _training_cell(c.test), _per_item_cell(c.test)]
                cells += [_p_text(p), _winner(t.test, f.test, p)]
            if left_out:
                cells.append(", ".join(t.left_out + f.left_out))
            out.append(cells)
        numeric = [False] * (2 if many else 1) + [False, True, True, True, True] * 2 + [True, False]
        tables.append(Table(f"{task}: which use of the budget wins", header, out,
                            WINNER_NOTE.format(family=family, plural="s" * (family != 1)),
                            numeric + [False] * left_out))
    return tables


def _winner(trained: Record, free: Record, p_holm: float | None) -> str:
    if p_holm is None:
        return "not tested (no per-item outputs on the same references)"
    q_t, q_f = quality(trained), quality(free)
    if p_holm >= ALPHA or q_t is None or q_f is None or q_t == q_f:
        return "no significant difference"
    return trained["arm"] if q_t > q_f else free["arm"]


# ---------------------------------------------------------------- nudging

NUDGE_NOTE = (
    "Nudging: the base model writes the answer and the aligned model supplies the token wherever the base"
    " model's top-1 probability is below the threshold. Supplied: tokens the aligned model wrote, of all "
    "generated tokens. Position < n: of the supplied tokens, those at the answer's first n positions "
    "(count and % of supplied). This is the direct test of the PreTTY paper's prior-knowledge hypothesis:"
    " if alignment mostly changes how an answer starts, the supplied tokens concentrate in the first "
    "positions. Aligned passes per item: next-token distributions the aligned model computed for the item"
    " (its extra decode steps per item: it runs only at steps where some item of the batch is unsure, and"
    " then for the whole batch).")


def _first(counts: dict, n: int) -> int | None:
    v = counts.get(str(n), counts.get(n))
    return None if v is None else int(v)


def _of_supplied(n: int | None, supplied: int | None) -> str:
    if n is None:
        return "n/a"
    return f"{n} ({100 * n / supplied:.1f}%)" if supplied else f"{n} (n/a)"


def nudge_tables(records: list[Record], many: bool | None = None) -> list[Table]:
    """Per unit, one row per nudge record: threshold, test quality, the share of tokens the aligned model
    supplied and where in the answer those fall. [] without nudge records."""
    many = spans_experiments(records) if many is None else many
    tables = []
    for (task, src, tgt), rows in groups(records, many).items():
        nudged = [r for r in rows if isinstance(r.get("nudge"), dict)]
        if not nudged:
            continue
        text = _quality_text(task, nudged)
        out = []
        for r in nudged:
            n = r["nudge"]
            tokens, supplied = n.get("tokens"), n.get("supplied")
            share = supplied / tokens if tokens and supplied is not None else n.get("share")
            first = n.get("first") or {}
            out.append([label(r, many), _g(n.get("threshold")), text(quality(r)),
                        f"{_g(supplied)} / {_g(tokens)}", "n/a" if share is None else f"{100 * share:.1f}",
                        *(_of_supplied(_first(first, k), supplied) for k in (1, 2, 3)),
                        _g(cost(r, "extra_decode_steps_per_item"), ".3g")])
        tables.append(Table(f"{task}: {direction(src, tgt)}: tokens the aligned model supplied",
                            ["arm", "threshold", quality_of(task, nudged).label,
                             "supplied / generated tokens", "supplied %", "at position < 1",
                             "at position < 2", "at position < 3", "aligned passes/item"], out, NUDGE_NOTE))
    return tables


# ---------------------------------------------------------------- quality against shots

def _prior_name(prior: dict) -> str:
    origin = prior.get("from_arm")
    name = f"{prior.get('source')} k={prior.get('k', '?')}"
    return name if origin in (None, prior.get("source")) else f"{name} ({origin})"


def _family(r: Record) -> str:
    """The line an icl-like arm belongs to: its selection, and the model it runs on or the prior it adds."""
    icl = r["icl"]
    if method(r) == "pretty":
        name = f"PreTTY {_prior_name(r.get('prior') or {})} + icl {icl.get('select', '?')}"
    else:
        name = f"icl {icl.get('select', '?')}" + (f" on {icl['from_arm']}" if icl.get("from_arm") else "")
    # another prompt bound is another line (the bound decides how many shots fit)
    bound = icl.get("max_prompt_tokens")
    name += f" ≤{bound} tokens" if bound not in (None, 1024) else ""
    return name + ("" if deployable(r) else UPPER)


def _zero_shot(r: Record, rows: list[Record], base: Record | None) -> Record | None:
    """The 0-shot point of an icl-like arm's line: the arm it adds examples to (the base arm for plain icl,
    the named arm for icl on it, the same prior without examples for PreTTY + icl)."""
    if method(r) == "pretty":
        same = ("source", "k", "from_arm")
        prior = {f: (r.get("prior") or {}).get(f) for f in same}
        return next((p for p in rows if method(p) == "pretty" and not p.get("icl")
                     and {f: (p.get("prior") or {}).get(f) for f in same} == prior), None)
    if r["icl"].get("from_arm"):
        return next((p for p in rows if p["arm"] == r["icl"]["from_arm"]), None)
    return base if base is not None and method(base) == "base" else None


def _shot_curves(rows: list[Record]) -> tuple[dict[str, dict[int, float]], float | None, float | None]:
    """{line: {shots: quality}}, base quality, SFT quality of one unit of one experiment."""
    base = reference_arm([r for r in rows if not r.get("icl")])
    sft = next((quality(r) for r in rows if r["arm"] == "sft"), None)
    curves: dict[str, dict[int, float]] = defaultdict(dict)
    for r in rows:
        icl = r.get("icl")
        if not isinstance(icl, dict) or icl.get("shots") is None or quality(r) is None:
            continue
        points = curves[_family(r)]
        points[int(icl["shots"])] = quality(r)
        zero = _zero_shot(r, rows, base)
        if 0 not in points and zero is not None and quality(zero) is not None:
            points[0] = quality(zero)
    base_q = quality(base) if base is not None and method(base) == "base" else None
    return dict(sorted(curves.items())), base_q, sft


def render_shots_plot(records: list[Record]) -> bytes | None:
    """PNG of quality against the number of in-context examples, a panel per unit (and experiment), a line
    per selection (and the model or prior it is added to); SFT and base as reference lines. None without
    icl records."""
    units = grouped(records, lambda r: (*unit(r), r.get("experiment") or ""))
    many = len({u[3] for u in units}) > 1
    curves = {u: _shot_curves(rows) for u, rows in sorted(units.items())}
    curves = {u: c for u, c in curves.items() if c[0]}
    if not curves:
        return None
    fig, axes = panel_grid(len(curves))
    # one colour per line name in every panel; markers shrink from line to line so equal lines both show
    names = sorted({name for lines, _, _ in curves.values() for name in lines})
    color = {name: f"C{i % 10}" for i, name in enumerate(names)}
    for ax, ((task, src, tgt, experiment), (lines, base, sft)) in zip(axes, curves.items()):
        for i, (name, points) in enumerate(lines.items()):
            shots = sorted(points)
            ax.plot(shots, [points[s] for s in shots], marker="o", markersize=max(3, 9 - 1.5 * i),
                    color=color[name], ls="--" if name.endswith(UPPER) else "-", label=name)
        if sft is not None:
            ax.axhline(sft, color="black", lw=1, alpha=0.6, label="SFT arm")
        if base is not None:
            ax.axhline(base, color="0.5", lw=1, ls=":", label="base arm (0 shots)")
        # shots double (0, 1, 2, 4, 8 ...): symlog spaces them evenly and still shows 0
        ax.set_xscale("symlog", base=2, linthresh=1)
        ticks = sorted({s for points in lines.values() for s in points})
        ax.xaxis.set_major_locator(FixedLocator(ticks))
        ax.xaxis.set_minor_locator(NullLocator())
        ax.set_xticklabels([str(s) for s in ticks])
        ax.set_xlabel("in-context examples (shots)")
        ax.set_ylabel(quality_of(task, records).label)
        ax.set_title(f"{task} {src}→{tgt}" + (f" ({experiment})" if many else ""), fontsize=11)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle("In-context examples: quality against the number of shots", fontsize=12)
    fig.tight_layout()
    out = io.BytesIO()
    fig.savefig(out, format="png", dpi=110)
    return out.getvalue()
