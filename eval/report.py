"""Cost-versus-quality report of one run, built from its results.jsonl alone.

Writes report.md (tables, sacreBLEU signatures, sample outputs), report.csv (one flat row per record)
and quality_vs_cost.png (chrF against training FLOPs) into the run directory.
"""
from __future__ import annotations

import csv
import io
import json
import math
import re
from collections import defaultdict
from pathlib import Path
from typing import Any, Callable

# The Agg canvas directly, not pyplot: headless, and importing this never switches a caller's backend.
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import NullLocator

from core.errors import UserError
from core.io import atomic_write_bytes, atomic_write_text
from core.languages import LANGUAGES
from eval.report_priors import QUALITY, render_k_plot, render_recovery

RESULTS = "results.jsonl"
METRICS = ("bleu", "chrf", "off_target_rate", "upos_accuracy", "invalid_rate", "position_accuracy")
COSTS = ("train_examples", "train_tokens", "train_flops", "train_wall_s", "train_device_s",
         "train_peak_mem_mb", "eval_wall_s", "extra_decode_steps_per_item", "extra_model_calls_per_item")
SAMPLES_PER_ARM = 3
SAMPLE_CHARS = 300  # keeps the markdown skimmable; the full outputs stay in results.jsonl
METHOD_COLORS = {"base": "tab:gray", "sft": "tab:blue", "lora": "tab:orange", "pretty": "tab:green"}

Record = dict[str, Any]


# ---------------------------------------------------------------- loading

def load_records(directory: Path) -> list[Record]:
    """A run's results.jsonl, or those of every experiment one level down (a sweep)."""
    own = directory / RESULTS
    found = [own] if own.is_file() else sorted(directory.glob(f"*/{RESULTS}")) or [own]
    records = [r for path in found for r in load_results(path)]
    if len({r.get("experiment") for r in records}) > 1:
        for r in records:
            r["_many"] = True  # labels then say which experiment an arm belongs to
    return records


def load_results(path: Path) -> list[Record]:
    """Records of a results.jsonl; UserError naming the file (and line) when it is missing or malformed."""
    try:
        lines = path.read_text(encoding="utf-8").split("\n")  # not splitlines: JSON strings may hold U+2028
    except OSError as e:
        raise UserError(f"{path}: cannot read results ({e.strerror or e})") from None
    except UnicodeDecodeError as e:
        raise UserError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    records = []
    for n, line in enumerate(lines, start=1):
        if line.strip():
            try:
                records.append(_check(json.loads(line)))
            except (json.JSONDecodeError, ValueError) as e:
                raise UserError(f"{path}:{n}: {e}") from None
    if not records:
        raise UserError(f"{path}: no results (the file is empty)")
    return records


def _check(record: Any) -> Record:
    if not isinstance(record, dict):
        raise ValueError(f"expected a JSON object, got {type(record).__name__}")
    if not isinstance(record.get("arm"), str) or not record["arm"]:
        raise ValueError("missing 'arm' (a non-empty string)")
    for section in ("metrics", "cost", "signatures", "weights", "prior"):
        if record.get(section) is not None and not isinstance(record[section], dict):
            raise ValueError(f"'{section}' must be an object or null")
    samples = record.get("samples")
    if samples is not None and not (isinstance(samples, list) and all(isinstance(s, dict) for s in samples)):
        raise ValueError("'samples' must be a list of objects")
    for section in ("metrics", "cost"):
        for key, value in (record.get(section) or {}).items():
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
                raise ValueError(f"{section}.{key}: expected a number, got {value!r}")
    return record


def _method(r: Record) -> str:
    return r.get("method") or r["arm"].split("-")[0]


def _metric(r: Record, key: str) -> float | None:
    return (r.get("metrics") or {}).get(key)


def _cost(r: Record, key: str) -> float | None:
    return (r.get("cost") or {}).get(key)


def _rank(method: str) -> int:
    # Reading order: the zero-shot baseline, then arms that pay for training, then PreTTY arms.
    return {"base": 0, "pretty": 2}.get(method, 1)


def _sort_key(r: Record) -> tuple:
    natural = [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", _label(r))]  # k2 before k10
    return _rank(_method(r)), natural


def _label(r: Record) -> str:
    """The arm, prefixed by its experiment when a report spans several (a sweep)."""
    return f"{r['experiment']}: {r['arm']}" if r.get("_many") and r.get("experiment") else r["arm"]


def _groups(records: list[Record]) -> dict[tuple[str, str, str], list[Record]]:
    """Records per (task, src, tgt), each group in reading order."""
    groups: dict[tuple[str, str, str], list[Record]] = defaultdict(list)
    for r in sorted(records, key=_sort_key):
        groups[(r.get("task") or "mt", r.get("src") or "?", r.get("tgt") or "?")].append(r)
    return dict(sorted(groups.items()))


def _direction(src: str, tgt: str) -> str:
    names = [LANGUAGES[c].name if c in LANGUAGES else c for c in (src, tgt)]
    return " → ".join(names)


def _distinct(records: list[Record], key: str) -> list[str]:
    return sorted({str(r[key]) for r in records if r.get(key)})


# ---------------------------------------------------------------- markdown

def _number(fmt: str) -> Callable[[float | None], str]:
    return lambda v: "n/a" if v is None else format(v, fmt)


def _flops(v: float | None) -> str:
    if v is None:
        return "n/a"
    if v == 0:
        return "0"
    mantissa, exponent = f"{v:.1e}".split("e")
    return f"{mantissa}e{int(exponent)}"  # 3.3e13 rather than 3.3e+13


def _percent(v: float | None) -> str:
    return "n/a" if v is None else f"{100 * v:.1f}"


Column = tuple[str, Callable[[Record], float | None], Callable[[float | None], str]]
# (header, value getter, formatter) per quality column of each task's table
TASK_COLUMNS: dict[str, list[Column]] = {
    "mt": [("BLEU", lambda r: _metric(r, "bleu"), _number(".2f")),
           ("chrF", lambda r: _metric(r, "chrf"), _number(".2f")),
           ("off-target %", lambda r: _metric(r, "off_target_rate"), _percent)],
    "pos": [("UPOS acc %", lambda r: _metric(r, "upos_accuracy"), _percent),
            ("invalid %", lambda r: _metric(r, "invalid_rate"), _percent),
            ("position acc % (lenient)", lambda r: _metric(r, "position_accuracy"), _percent)],
}
# ... then the cost columns, the same for every task
COLUMNS: list[Column] = [
    ("train examples", lambda r: _cost(r, "train_examples"), _number(".0f")),
    ("train tokens", lambda r: _cost(r, "train_tokens"), _number(".0f")),
    ("train FLOPs", lambda r: _cost(r, "train_flops"), _flops),
    ("train wall s", lambda r: _cost(r, "train_wall_s"), _number(".1f")),
    ("device s", lambda r: _cost(r, "train_device_s"), _number(".1f")),
    ("peak mem MB", lambda r: _cost(r, "train_peak_mem_mb"), _number(".0f")),
    ("extra decode steps/item", lambda r: _cost(r, "extra_decode_steps_per_item"), _number("g")),
]


def _cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def render_tables(records: list[Record]) -> str:
    """One markdown table per task/direction, each followed by its sacreBLEU signatures."""
    parts = []
    for (task, src, tgt), rows in _groups(records).items():
        n_items = "/".join(_distinct(rows, "n_items")) or "?"
        columns = TASK_COLUMNS.get(task, []) + COLUMNS
        parts.append(f"## {task}: {_direction(src, tgt)} ({n_items} items)\n")
        parts.append("| arm | " + " | ".join(h for h, _, _ in columns) + " |")
        parts.append("|---|" + "---:|" * len(columns))
        for r in rows:
            parts.append(f"| {_cell(_label(r))} | " + " | ".join(fmt(get(r)) for _, get, fmt in columns) + " |")
        if task != "mt":
            continue
        signatures = []
        for name, label in (("bleu", "BLEU"), ("chrf", "chrF")):
            found = sorted({s for r in rows if (s := (r.get("signatures") or {}).get(name))})
            signatures.append(f"{label} " + (", ".join(f"`{s}`" for s in found) or "n/a"))
        parts.append("\nsacreBLEU signatures: " + "; ".join(signatures) + "\n")
    return "\n".join(parts)


def _shorten(text: Any) -> str:
    text = " ".join(str(text or "").split())
    return text if len(text) <= SAMPLE_CHARS else text[:SAMPLE_CHARS - 1] + "…"


def _render_samples(records: list[Record]) -> str:
    parts = [f"## Samples (first {SAMPLES_PER_ARM} per arm)\n"]
    for (task, src, tgt), rows in _groups(records).items():
        for r in rows:
            parts.append(f"### {_label(r)} ({task}, {src}→{tgt})\n")
            samples = r.get("samples") or []
            if not samples:
                parts.append("(no samples recorded)\n")
            for s in samples[:SAMPLES_PER_ARM]:
                # quoted: a prior's leading space or newline matters to the model
                prior = f"  \n  prior: {json.dumps(s['prior'], ensure_ascii=False)}" if s.get("prior") else ""
                parts.append(f"- [{s.get('id', '?')}] source: {_shorten(s.get('source'))}  \n"
                             f"  reference: {_shorten(s.get('reference'))}  \n"
                             f"  output: {_shorten(s.get('output'))}{prior}")
            parts.append("")
    return "\n".join(parts)


def render_markdown(records: list[Record], run_dir: Path) -> str:
    experiment = ", ".join(_distinct(records, "experiment")) or run_dir.name
    revs = _distinct(records, "git_rev")
    hashes = _distinct(records, "config_hash")
    header = [f"# Cost vs quality: {experiment}\n",
              f"- git rev: {', '.join(f'`{v}`' for v in revs) or 'unknown'}"
              + (" (arms come from different revisions)" if len(revs) > 1 else ""),
              f"- config hash: {', '.join(f'`{v}`' for v in hashes) or 'unknown'}",
              f"- run dir: `{run_dir}`; FLOPs/times/memory are training costs as recorded (a PreTTY arm "
              "whose prior comes from SFT carries the SFT arm's training cost)\n"]
    return "\n".join(header) + "\n" + render_tables(records) + "\n" + _render_samples(records)


# ---------------------------------------------------------------- csv

def _extra_keys(records: list[Record], section: str, known: tuple[str, ...]) -> list[str]:
    return sorted({k for r in records for k in (r.get(section) or {}) if k not in known})


def render_csv(records: list[Record]) -> str:
    """One row per record; raw numbers (not rounded), unknown metric/cost keys kept as extra columns."""
    metrics = list(METRICS) + _extra_keys(records, "metrics", METRICS)
    costs = list(COSTS) + _extra_keys(records, "cost", COSTS)
    fields = (["experiment", "arm", "method", "task", "src", "tgt", "budget", "n_items", "prior_source", "prior_k"]
              + metrics + costs + ["bleu_signature", "chrf_signature", "config_hash", "git_rev",
                                   "weights_path", "weights_sha256"])
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    for rows in _groups(records).values():
        for r in rows:
            signatures, weights, prior = (r.get(k) or {} for k in ("signatures", "weights", "prior"))
            writer.writerow({
                **{k: r.get(k) for k in ("experiment", "arm", "task", "src", "tgt", "budget", "n_items",
                                         "config_hash", "git_rev")},
                "method": _method(r),
                "prior_source": prior.get("source"), "prior_k": prior.get("k"),
                **{k: _metric(r, k) for k in metrics}, **{k: _cost(r, k) for k in costs},
                "bleu_signature": signatures.get("bleu"), "chrf_signature": signatures.get("chrf"),
                "weights_path": weights.get("path"), "weights_sha256": weights.get("sha256"),
            })
    return out.getvalue()


# ---------------------------------------------------------------- plot

Box = tuple[float, float, float, float]  # x0, y0, x1, y1 in display pixels
LABEL_SIZE = 8


def _place_labels(ax: Axes, points: list[tuple[float, float, str]]) -> list[tuple[Box, bool]]:
    """A label box per point (in the order given), pushed upwards until it overlaps no other label or
    marker: arms often share an x (every training-free arm sits at 0 FLOPs). The flag says it moved."""
    renderer = ax.figure.canvas.get_renderer()
    gap = 5 * ax.figure.dpi / 72
    pixels = [ax.transData.transform((x, y)) for x, y, _ in points]
    occupied: list[Box] = [(px - gap / 2, py - gap / 2, px + gap / 2, py + gap / 2) for px, py in pixels]
    boxes: dict[int, tuple[Box, bool]] = {}
    for i in sorted(range(len(points)), key=lambda i: (pixels[i][1], pixels[i][0])):
        px, py = pixels[i]
        probe = ax.text(0, 0, points[i][2], fontsize=LABEL_SIZE)
        extent = probe.get_window_extent(renderer)
        probe.remove()
        width, height = extent.width, extent.height
        # labels that would leave the axes on the right go on the point's left
        x0 = px - gap - width if px + gap + width > ax.get_window_extent().x1 else px + gap
        y0 = start = py - height / 2
        while clash := [b for b in occupied if x0 < b[2] and b[0] < x0 + width and y0 < b[3] and b[1] < y0 + height]:
            y0 = max(b[3] for b in clash) + 1
        box = (x0, y0, x0 + width, y0 + height)
        occupied.append(box)
        boxes[i] = (box, y0 > start + 1)
    return [boxes[i] for i in range(len(points))]


def _label_points(ax: Axes, points: list[tuple[float, float, str]]) -> None:
    """Label every point without overlaps, raising the y limit until the stacked labels fit inside."""
    for _ in range(5):  # each pass shrinks the data range per pixel; converges in one or two
        placed = _place_labels(ax, points)
        frame = ax.get_window_extent()
        excess = max(box[3] for box, _ in placed) - frame.y1
        if excess <= 0:
            break
        bottom, top = ax.get_ylim()
        ax.set_ylim(bottom, top + (top - bottom) * 1.1 * excess / frame.height)
    to_points = 72 / ax.figure.dpi  # offsets in points stay right when savefig changes the dpi
    for (x, y, text), ((x0, y0, _, y1), moved) in zip(points, placed):
        px, py = ax.transData.transform((x, y))
        ax.annotate(text, (x, y), xytext=((x0 - px) * to_points, ((y0 + y1) / 2 - py) * to_points),
                    textcoords="offset points", fontsize=LABEL_SIZE, va="center", ha="left",
                    annotation_clip=False,
                    arrowprops={"arrowstyle": "-", "lw": 0.5, "color": "0.5"} if moved else None)


def _flops_axis(ax: Axes, flops: list[float]) -> None:
    """Symlog x axis: training-free arms (0 FLOPs) get their own tick left of the trained arms' decades."""
    nonzero = [f for f in flops if f > 0]
    if not nonzero:
        ax.set_xlim(-1, 4)  # room on the right for the labels
        ax.set_xticks([0], ["0\n(training-free)"])
        return
    low, high = math.floor(math.log10(min(nonzero))), math.ceil(math.log10(max(nonzero)))
    linthresh = 10.0 ** (low - 1)
    ax.set_xscale("symlog", linthresh=linthresh, linscale=0.6)
    ax.set_xlim(-0.4 * linthresh, 10.0 ** (high + 0.3))
    decades = list(range(low, high + 1, max(1, (high - low) // 6)))
    ax.set_xticks([0] + [10.0 ** e for e in decades],
                  ["0\n(training-free)"] + [f"$10^{{{e}}}$" for e in decades])
    ax.xaxis.set_minor_locator(NullLocator())


def render_plot(records: list[Record]) -> bytes:
    """PNG of quality (chrF, UPOS accuracy) against training FLOPs, one panel per task/direction, every point labelled with its arm."""
    groups = _groups(records)
    ncols = min(3, len(groups))
    nrows = math.ceil(len(groups) / ncols)
    fig = Figure(figsize=(6.0 * ncols, 4.8 * nrows))
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, ncols, squeeze=False)
    experiment = ", ".join(_distinct(records, "experiment"))
    fig.suptitle(f"Quality vs training cost{': ' + experiment if experiment else ''}", fontsize=13)
    for ax in axes.flat[len(groups):]:
        ax.remove()
    methods_seen: set[str] = set()
    to_label: list[tuple[Axes, list[tuple[float, float, str]]]] = []
    for ax, ((task, src, tgt), rows) in zip(axes.flat, groups.items()):
        key, label, scale = QUALITY.get(task, QUALITY["mt"])
        points = [(_cost(r, "train_flops"), _metric(r, key), r) for r in rows]
        points = [(x, y, r) for x, y, r in points if x is not None and y is not None]
        ax.set_title(f"{task}: {_direction(src, tgt)}", fontsize=11)
        ax.set_ylabel(label)
        ax.set_xlabel("training FLOPs")
        ax.grid(True, alpha=0.3)
        if not points:
            ax.text(0.5, 0.5, f"no arm has both {label} and train_flops", ha="center", transform=ax.transAxes)
            continue
        for x, y, r in points:
            method = _method(r)
            methods_seen.add(method)
            ax.scatter(x, y, s=36, color=METHOD_COLORS.get(method, "tab:purple"), zorder=3)
        _flops_axis(ax, [x for x, _, _ in points])
        ys = [y for _, y, _ in points]
        span = max(max(ys) - min(ys), 0.05 * scale)  # a lone point or a tight cluster still gets readable ticks
        ax.set_ylim(min(ys) - 0.1 * span, max(ys) + 0.1 * span)  # _label_points raises the top as needed
        to_label.append((ax, [(x, y, _label(r)) for x, y, r in points]))
    handles = [Line2D([], [], marker="o", ls="", color=METHOD_COLORS.get(m, "tab:purple"), label=m)
               for m in sorted(methods_seen, key=lambda m: (_rank(m), m))]
    if handles:
        fig.legend(handles=handles, loc="lower center", bbox_to_anchor=(0.5, 0.06), ncol=len(handles),
                   frameon=False)
    fig.text(0.5, 0.01, "A PreTTY arm whose prior comes from a trained model\ncarries that model's training FLOPs",
             ha="center", fontsize=8, color="0.35")
    fig.tight_layout(rect=(0, 0.12, 1, 1))
    for ax, labels in to_label:  # after the layout is final: placement works in display pixels
        _label_points(ax, labels)
    out = io.BytesIO()
    fig.savefig(out, format="png", dpi=120)
    return out.getvalue()


# ---------------------------------------------------------------- entry points

def build_report(run_dir: Path) -> dict[str, Path]:
    """Write report.md, report.csv, quality_vs_cost.png and (with PreTTY arms) quality_vs_k.png into run_dir;
    return their paths by kind."""
    run_dir = Path(run_dir)
    records = load_records(run_dir)
    paths = {"md": run_dir / "report.md", "csv": run_dir / "report.csv", "png": run_dir / "quality_vs_cost.png"}
    recovery = render_recovery(records)
    markdown = render_markdown(records, run_dir)
    if recovery:  # before the samples, next to the tables it summarises
        markdown = markdown.replace("## Samples", recovery + "\n## Samples", 1)
    atomic_write_text(paths["md"], markdown)
    atomic_write_text(paths["csv"], render_csv(records))
    atomic_write_bytes(paths["png"], render_plot(records))
    k_plot = render_k_plot(records)
    if k_plot is not None:
        paths["k_png"] = run_dir / "quality_vs_k.png"
        atomic_write_bytes(paths["k_png"], k_plot)
    return paths
