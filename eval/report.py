"""Cost-versus-quality report of one run or a whole sweep, built from results.jsonl files alone.

Writes into the directory: report.md and report.html (tables per task and language pair with 95% bootstrap
intervals and paired tests against SFT, every cost, the share of SFT recovered by PreTTY, which use of the
budget wins (training or training-free, chosen on dev), where nudging's tokens go, how much of a gap is loops,
break-even item counts, sample outputs), report.csv (one flat row per record) and the plots: quality against
each cost with the Pareto front (quality_vs_cost.png = training FLOPs, _examples, _device_hours,
_extra_steps, _prompt_tokens), quality against k (quality_vs_k.png, with PreTTY arms), against shots
(quality_vs_shots.png, with icl arms) and against the data budget (quality_vs_budget.png, in a sweep).
"""
from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path
from typing import Any, Callable

from core.io import atomic_write_bytes, atomic_write_text
from eval.records import (UNKNOWN, Record, cost, direction, distinct, groups, is_extra_seed, label,
                           load_dev_records, load_records, method, metric, quality_of, seed_spread,
                           spans_experiments, training_cost, training_cost_known)
from eval.report_html import render_html
from eval.report_budget import nudge_tables, render_shots_plot, winner_tables
from eval.report_knowledge import clika_tables
from eval.report_loops import loop_tables
from eval.report_plots import COST_AXES, render_budget_plot, render_cost_plot
from eval.report_priors import recovery_tables, render_k_plot
from eval.report_stats import Significance, Tested, break_even
from eval.tables import Table, flops_text
from tasks import TASKS
from tasks.base import Column as TaskColumn

METRICS = ("bleu", "chrf", "off_target_rate", "off_target_undecided_rate", "upos_accuracy", "invalid_rate",
           "position_accuracy", "degenerate_rate", "accuracy", "chance_corrected", "top_position_share",
           "xrr", "gate_passed", "gate_min", "translation_accuracy", "en_type0_accuracy", "en_type1_accuracy",
           "x_type0_accuracy")
COSTS = ("train_examples", "train_tokens", "train_flops", "train_wall_s", "train_device_s",
         "train_peak_mem_mb", "train_mfu", "train_stages", "eval_wall_s",
         "extra_decode_steps_per_item", "extra_model_calls_per_item", "extra_prompt_tokens_per_item")
SAMPLES_PER_ARM = 3
SAMPLE_CHARS = 300  # keeps the markdown skimmable; the full outputs stay in results.jsonl


# ---------------------------------------------------------------- tables

def _number(fmt: str) -> Callable[[float | None], str]:
    return lambda v: "unknown" if v is UNKNOWN else "n/a" if v is None else format(v, fmt)


def _flops(v: float | None) -> str:
    return "unknown" if v is UNKNOWN else flops_text(v)


def _percent(v: float | None) -> str:
    return "unknown" if v is UNKNOWN else "n/a" if v is None else f"{100 * v:.1f}"


def _half_width(scale: float, digits: int) -> Callable[[Any], str]:
    """± the interval's half-width, `scale` times (100 for a share shown in %)."""
    return lambda ci: "n/a" if ci is None else f"±{scale * ci.half_width:.{digits}f}"


def _gate(v: float | None) -> str:
    return "n/a" if v is None else "met" if v else "NOT met"


def _interval(row: Record) -> Any:
    return row.get("_ci")


Column = tuple[str, Callable[[Record], Any], Callable[[Any], str]]
# (header, value getter, formatter); a getter reads a row (`_row`): the record's fields, and `_ci` and
# `_p_holm`, its interval and Holm-corrected p vs SFT


def task_columns(task: str, rows: list[Record]) -> list[Column]:
    """The quality columns a task declares (tasks/); a task no process registered here: its quality and
    interval."""
    if task in TASKS:
        return [_column(c) for c in TASKS[task].columns]
    judged_by = quality_of(task, rows)
    return [_column(TaskColumn(judged_by.label, judged_by.key, ".3g")),
            _column(TaskColumn("±95%", "ci", ".3g"))]


def _column(c: TaskColumn) -> Column:
    if c.metric == "ci":   # the quality's interval, on the quality's own scale (a share: in %)
        return c.header, _interval, _half_width(100, 1) if c.format == "percent" else _half_width(1, 2)
    get = (lambda r: r.get(c.metric)) if c.field else (lambda r: metric(r, c.metric))
    if callable(c.format):
        return c.header, get, c.format
    return c.header, get, {"percent": _percent, "gate": _gate}.get(c.format) or _number(c.format)


def _p_value(p: float | None) -> str:
    return "" if p is None else f"{p:.3f}" + ("*" if p < 0.05 else "")


# ... then significance and the cost columns, the same for every task
COLUMNS: list[Column] = [
    ("p vs SFT (Holm)", lambda r: r.get("_p_holm"), _p_value),   # Holm over the arms of one table
    ("train examples", lambda r: training_cost(r, "train_examples"), _number(".0f")),
    ("train tokens", lambda r: training_cost(r, "train_tokens"), _number(".0f")),
    ("train FLOPs", lambda r: training_cost(r, "train_flops"), _flops),
    ("train wall s", lambda r: training_cost(r, "train_wall_s"), _number(".1f")),
    ("device s", lambda r: training_cost(r, "train_device_s"), _number(".1f")),
    ("peak mem MB", lambda r: training_cost(r, "train_peak_mem_mb"), _number(".0f")),
    ("extra decode steps/item", lambda r: cost(r, "extra_decode_steps_per_item"), _number("g")),
    ("extra prompt tokens/item", lambda r: cost(r, "extra_prompt_tokens_per_item"), _number(".0f")),
]


def _shown(v: Any) -> bool:
    """Whether a value fills an optional column (an unknown cost alone does not: it says nothing measured)."""
    return v is not UNKNOWN and bool(v)


def _tokens_per_s(r: Record) -> Any:
    if not training_cost_known(r):
        return UNKNOWN
    return cost(r, "train_tokens") / cost(r, "train_wall_s") if cost(r, "train_wall_s") else None


def _shots(icl: Any) -> str:
    """Demonstrations per item after the prompt bound, of those asked (the bound drops whole shots)."""
    return f"{icl['shots_used_mean']:.2g} of {icl['shots']}" if isinstance(icl, dict) else ""


OPTIONAL: list[Column] = [
    ("shots used", lambda r: r.get("icl"), _shots),
    ("train tokens/s", _tokens_per_s, _number(".0f")),
    ("MFU %", lambda r: training_cost(r, "train_mfu"), _percent),
    ("tokens by language", lambda r: r.get("train_tokens_by_lang"),
     lambda d: " ".join(f"{k}:{v}" for k, v in d.items()) if d else ""),
]
COLUMNS[-2:-2] = OPTIONAL   # before the per-item costs
OPTIONAL.append(COLUMNS[-1])   # demonstrations' prefill: only where some arm has demonstrations
# Quality metrics only some records have (COMET: where eval.comet was set and its environment scored them),
# after the quality's interval, shown only where a record of the table has the metric
OPTIONAL_METRICS: dict[str, tuple[TaskColumn, ...]] = {"mt": (TaskColumn("COMET", "comet", ".4f"),)}


def _optional_metrics(task: str, rows: list[Record]) -> tuple[list[Column], str]:
    """The optional metric columns some row here fills, and a note naming what computed them."""
    shown = [c for c in OPTIONAL_METRICS.get(task, ()) if any(metric(r, c.metric) is not None for r in rows)]
    models = sorted({f"`{(r.get('comet') or {}).get('model')}` (unbabel-comet "
                     f"{(r.get('comet') or {}).get('unbabel_comet') or '?'})"
                     for r in rows if metric(r, "comet") is not None})
    note = f" COMET: {', '.join(models)}; n/a where it was skipped." if models else ""
    return [_column(c) for c in shown], note


def _money(usd_per_device_hour: float) -> Column:
    return (f"train USD (at {usd_per_device_hour:g}/device-h)",
            lambda r: _scaled(training_cost(r, "train_device_s"), usd_per_device_hour / 3600), _number(".2f"))


def _scaled(v: float | None, factor: float) -> float | None:
    return v if v is None or v is UNKNOWN else v * factor


def _flops_convention() -> str:
    """How training FLOPs are counted, when the ledger says (rule 2 of a fair comparison: one convention)."""
    try:
        from core import ledger
    except ImportError:
        return ""
    return getattr(ledger, "FLOPS_CONVENTION", "")


def _seed_column(task: str, spread: dict[tuple, tuple[float, float, int]]) -> list[Column]:
    """Mean ± sd of the quality over training seeds, beside the first seed's own interval."""
    judged_by = quality_of(task)
    name, factor = judged_by.label, 1 if judged_by.scale > 1 else 100

    def get(r: Record):
        return spread.get((r.get("experiment"), r.get("family"), task, r.get("src"), r.get("tgt")))

    return [(f"{name} mean ± sd over seeds", get,
             lambda v: "" if v is None else f"{factor * v[0]:.2f} ± {factor * v[1]:.2f} ({v[2]})")]


def _row(r: Record, tested: Tested) -> Record:
    """What the columns read: a new dict of the record's fields with its interval as `_ci` and its
    Holm-corrected p vs SFT as `_p_holm` (the record itself stays as loaded)."""
    return {**r, "_ci": tested.interval, "_p_holm": tested.p_holm}


def quality_tables(records: list[Record], usd_per_device_hour: float | None = None,
                   spread: dict[tuple, tuple[float, float, int]] | None = None, many: bool | None = None,
                   significance: Significance | None = None) -> list[Table]:
    """One table per task/direction. `spread`: the quality over training seeds (records.seed_spread), shown
    where an arm was trained with several; `many`: whether arms are labelled with their experiment (None:
    whether these records span several); `significance`: the records' intervals and tests, computed here
    when not given."""
    many = spans_experiments(records) if many is None else many
    if significance is None:
        significance = Significance(records, many)
    money = [_money(usd_per_device_hour)] if usd_per_device_hour else []
    tables = []
    for (task, src, tgt), records_here in groups(records, many).items():
        rows = [_row(r, significance.of(r)) for r in records_here]
        # one family per table: every arm tested against SFT here (report.csv keeps the raw p too)
        family = sum(r["_ci"] is not None and r["_ci"].p_vs_sft is not None for r in rows)
        n_items = "/".join(distinct(rows, "n_items")) or "?"
        seeds = _seed_column(task, spread or {})
        if not any(seeds[0][1](r) for r in rows):
            seeds = []
        own = task_columns(task, rows)
        # beside the first seed's interval
        at = next((i + 1 for i, c in enumerate(own) if "±95%" in c[0]), len(own))
        extra, extra_note = _optional_metrics(task, rows)
        columns = own[:at] + seeds + extra + own[at:] + COLUMNS + money
        # a cost column no record here has is noise: MFU on a CPU, tokens by language without pretraining
        columns = [c for c in columns if c not in OPTIONAL or any(_shown(c[1](r)) for r in rows)]
        note = ("±95%: half-width of the 95% bootstrap interval; p vs SFT: paired bootstrap against the SFT "
                f"arm of the same experiment, Holm-corrected over {family} test{'s' * (family != 1)} (this "
                "table's; * below 0.05)." if family else
                "±95%: half-width of the 95% bootstrap interval; p vs SFT: no arm here was tested (no "
                "per-item outputs beside an SFT arm's).")
        if seeds:
            note += (" Mean ± sd over seeds: the quality of the arm trained once per seed (`seeds:`); the "
                     "row's own interval, test and costs are its first seed's.")
        if not all(training_cost_known(r) for r in rows):
            note += (" Training cost unknown: an outside model whose training nobody recorded — not zero, "
                     "and left out of Pareto fronts and break-even.")
        if convention := _flops_convention():
            note += f" Training FLOPs: {convention}"
        note += (TASKS[task].report_note(rows) if task in TASKS else "") + extra_note
        tables.append(Table(f"{task}: {direction(src, tgt)} ({n_items} items)",
                            ["arm"] + [h for h, _, _ in columns],
                            [[label(r, many)] + [fmt(get(r)) for _, get, fmt in columns] for r in rows],
                            note))
    return tables


def break_even_tables(records: list[Record], many: bool | None = None) -> list[Table]:
    many = spans_experiments(records) if many is None else many
    tables = []
    for (task, src, tgt), rows in groups(records, many).items():
        found = break_even(rows, many)
        if found:
            tables.append(Table(
                f"{task}: {direction(src, tgt)}",
                ["training arm", "per-item arm", "training device s", "its extra s/item",
                 "break-even items"],
                [[b.trained, b.pretty, f"{b.train_device_s:.0f}", f"{b.extra_s_per_item:.3f}",
                  "never (no per-item overhead measured)" if math.isinf(b.items) else f"{b.items:,.0f}"]
                 for b in found],
                "Per-item arms pay on every item: PreTTY its prior, icl its demonstrations' prefill, nudge "
                "the aligned model's passes. Extra seconds per item are that arm's evaluation wall time per "
                "item minus the base "
                "arm's of the same experiment (same items, same machine); below the break-even count the "
                "per-item arm costs less compute. Arms are paired only within an experiment; upper bounds "
                "(oracle priors) and arms of unknown training cost are left out.",
                numeric=[False, False, True, True, True]))
    return tables


def _shorten(text: Any) -> str:
    text = " ".join(str(text or "").split())
    return text if len(text) <= SAMPLE_CHARS else text[:SAMPLE_CHARS - 1] + "…"


def samples(records: list[Record], many: bool | None = None) -> list[tuple[str, list[dict[str, str]]]]:
    """(heading, first samples) per record, the texts shortened; a prior quoted: its leading space matters."""
    many = spans_experiments(records) if many is None else many
    out = []
    for (task, src, tgt), rows in groups(records, many).items():
        for r in rows:
            out.append((f"{label(r, many)} ({task}, {src}→{tgt})", [
                {"id": str(s.get("id", "?")), "source": _shorten(s.get("source")),
                 "reference": _shorten(s.get("reference")), "output": _shorten(s.get("output")),
                 "prior": json.dumps(s["prior"], ensure_ascii=False) if s.get("prior") else ""}
                for s in (r.get("samples") or [])[:SAMPLES_PER_ARM]]))
    return out


def header_lines(records: list[Record], run_dir: Path) -> list[str]:
    revs, hashes = distinct(records, "git_rev"), distinct(records, "config_hash")
    splits = distinct(records, "split")
    split = ("dev: the split every choice is made on, before the test" if splits == ["dev"] else
             "test" if splits in (["test"], []) else ", ".join(splits))
    return [f"git rev: {', '.join(f'`{v}`' for v in revs) or 'unknown'}"
            + (" (arms come from different revisions)" if len(revs) > 1 else ""),
            f"config hash: {', '.join(f'`{v}`' for v in hashes) or 'unknown'}",
            f"evaluated on: {split}",
            f"run dir: `{run_dir}`; FLOPs/times/memory are training costs as recorded (a PreTTY arm whose "
            "prior comes from SFT carries the SFT arm's training cost; an outside model whose training was "
            "not recorded is *unknown*, not 0)"]


def title(records: list[Record], run_dir: Path) -> str:
    return f"Cost vs quality: {', '.join(distinct(records, 'experiment')) or run_dir.name}"


# ---------------------------------------------------------------- markdown

def render_markdown(records: list[Record], run_dir: Path, sections: dict[str, list[Table]],
                    many: bool | None = None) -> str:
    parts = [f"# {title(records, run_dir)}\n", *(f"- {line}" for line in header_lines(records, run_dir)), ""]
    for heading, tables in sections.items():
        if heading:
            parts.append(f"## {heading}\n")
        parts += [t.markdown(3 if heading else 2) for t in tables]
    parts.append(f"## Samples (first {SAMPLES_PER_ARM} per arm)\n")
    for heading, shown in samples(records, many):
        parts.append(f"### {heading}\n")
        parts += [f"- [{s['id']}] source: {s['source']}  \n  reference: {s['reference']}  \n"
                  f"  output: {s['output']}" + (f"  \n  prior: {s['prior']}" if s["prior"] else "")
                  for s in shown] or ["(no samples recorded)"]
        parts.append("")
    return "\n".join(parts)


# ---------------------------------------------------------------- csv

def _extra_keys(records: list[Record], section: str, known: tuple[str, ...]) -> list[str]:
    return sorted({k for r in records for k in (r.get(section) or {}) if k not in known})


def _cell(v: Any) -> Any:
    """A text cell a spreadsheet would run as a formula gets a leading quote (OWASP's CSV injection advice);
    numbers stay numbers."""
    return f"'{v}" if isinstance(v, str) and v[:1] in ("=", "+", "-", "@", "\t", "\r") else v


def render_csv(records: list[Record], significance: Significance | None = None,
               many: bool | None = None) -> str:
    """One row per record; raw numbers (not rounded), unknown metric/cost keys kept as extra columns.
    Intervals and tests are the first seed's of each arm (`significance`, computed here when not given), as
    in the tables; another seed's row has none."""
    many = spans_experiments(records) if many is None else many
    if significance is None:
        significance = Significance([r for r in records if not is_extra_seed(r)], many)
    metrics = list(METRICS) + _extra_keys(records, "metrics", METRICS)
    costs = list(COSTS) + _extra_keys(records, "cost", COSTS)
    fields = (["experiment", "arm", "method", "task", "src", "tgt", "budget", "n_items", "prior_source",
               "prior_k"]
              + metrics + ["ci_mean", "ci_half_width", "p_vs_sft", "p_vs_sft_holm"] + costs
              + ["train_cost_known"]
              + ["bleu_signature", "chrf_signature", "config_hash", "git_rev", "weights_path",
                 "weights_sha256"])
    out = io.StringIO()
    # RFC 4180 line ends: a field holding a bare \r is then quoted (with "\n" Python writes it bare:
    # the file no longer reads back)
    writer = csv.DictWriter(out, fieldnames=fields, lineterminator="\r\n")
    writer.writerow({f: _cell(f) for f in fields})   # extra columns are named by the records' keys
    for rows in groups(records, many).values():
        for r in rows:
            signatures, weights, prior = (r.get(k) or {} for k in ("signatures", "weights", "prior"))
            tested = significance.of(r)
            ci = tested.interval
            writer.writerow({k: _cell(v) for k, v in {
                **{k: r.get(k) for k in ("experiment", "arm", "task", "src", "tgt", "budget", "n_items",
                                         "config_hash", "git_rev")},
                "method": method(r),
                "prior_source": prior.get("source"), "prior_k": prior.get("k"),
                **{k: metric(r, k) for k in metrics}, **{k: cost(r, k) for k in costs},  # unknown: empty
                "train_cost_known": training_cost_known(r),
                "ci_mean": ci and ci.mean, "ci_half_width": ci and ci.half_width,
                "p_vs_sft": ci and ci.p_vs_sft,
                "p_vs_sft_holm": tested.p_holm,
                "bleu_signature": signatures.get("bleu"), "chrf_signature": signatures.get("chrf"),
                "weights_path": weights.get("path"), "weights_sha256": weights.get("sha256"),
            }.items()})
    return out.getvalue()


# ---------------------------------------------------------------- entry point

def build_report(run_dir: Path,
                 usd_per_device_hour: float | None = None) -> tuple[dict[str, Path], dict[str, Table]]:
    """Write the report files into run_dir; return their paths by kind (md, html, csv and one key per plot)
    and every table by a name (for W&B). Every file is replaced atomically: a crash leaves the previous
    report, never half of one."""
    run_dir = Path(run_dir)
    every = load_records(run_dir)
    many = spans_experiments(every)   # a sweep: every label names its experiment
    # arms trained with several seeds: their first seed's records stand for them, the others give mean ± sd
    records = [r for r in every if not is_extra_seed(r)]
    dev_report = all(r.get("split") == "dev" for r in records)
    significance = Significance(records, many)   # once: the tables and report.csv show the same tests
    sections = {
        "": quality_tables(records, usd_per_device_hour, seed_spread(every), many, significance),
        "What PreTTY recovers: the base → SFT gap closed, and the share of SFT": recovery_tables(records),
        "Cross-lingual knowledge alignment (CLiKA)": clika_tables(records, many),
        "Which use of the budget wins: training against training-free (chosen on dev)":
            winner_tables(records, [] if dev_report else load_dev_records(run_dir), many)
            if not dev_report else [],
        "Nudging: where the aligned model's tokens go": nudge_tables(records, many),
        "Loops: how much of the gap to SFT is degenerate outputs": loop_tables(records, many),
        "Break-even: training arm against per-item overhead (PreTTY, icl, nudge)":
            break_even_tables(records, many)}
    sections = {k: v for k, v in sections.items() if v}
    plots = {stem: render_cost_plot(records, stem, many) for stem in COST_AXES
             if stem != "quality_vs_prompt_tokens" or any(cost(r, "extra_prompt_tokens_per_item")
                                                           for r in records)}
    plots["quality_vs_k"] = render_k_plot(records)
    plots["quality_vs_shots"] = render_shots_plot(records)
    plots["quality_vs_budget"] = render_budget_plot(records)
    plots = {stem: png for stem, png in plots.items() if png is not None}

    paths = {"md": run_dir / "report.md", "html": run_dir / "report.html", "csv": run_dir / "report.csv"}
    for stem, png in plots.items():
        paths[stem] = run_dir / f"{stem}.png"
        atomic_write_bytes(paths[stem], png)
    atomic_write_text(paths["csv"], render_csv(every, significance, many))
    atomic_write_text(paths["html"], render_html(title(records, run_dir), header_lines(records, run_dir),
                                                 sections, [f"{stem}.png" for stem in plots],
                                                 samples(records, many)))
    # last: a sweep takes report.md for a finished point, so it must not stand beside a half-written report
    atomic_write_text(paths["md"], render_markdown(records, run_dir, sections, many))
    tables = {f"{heading or 'quality'}: {t.title}": t for heading, ts in sections.items() for t in ts}
    return paths, tables
