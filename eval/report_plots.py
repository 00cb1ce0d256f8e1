"""The report's cost plots: quality against each kind of cost with the Pareto front marked, and quality
against the data budget per arm when a sweep varied it. One panel per task and language pair.

Only deployable arms of known cost can be on a front. Upper bounds (oracle priors) are drawn hollow at their
cost; arms whose training cost is unknown are drawn hollow in an "unknown" column right of the cost axis."""
from __future__ import annotations

import io
import math
from typing import Callable

# The Agg canvas directly, not pyplot: headless, and importing this never switches a caller's backend.
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import NullLocator

from core.arms import ARMS
from eval.records import (UNKNOWN, Record, quality_of, cost, deployable, direction, distinct, groups, label,
                           method, quality, rank, spans_experiments, training_cost)

# one colour per registered arm method (core/arms.py), in registration order: the built-in arms keep theirs
PALETTE = ("tab:gray", "tab:blue", "tab:orange", "tab:purple", "tab:brown", "tab:green", "tab:red",
           "tab:pink", "tab:olive", "tab:cyan")


def panel_grid(n: int) -> tuple[Figure, list[Axes]]:
    """A figure of n panels, three to a row (the per-unit plots: quality against k, shots, budget)."""
    ncols = min(3, n)
    nrows = math.ceil(n / ncols)
    fig = Figure(figsize=(5.2 * ncols, 4.0 * nrows))
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, ncols, squeeze=False)
    for ax in axes.flat[n:]:
        ax.remove()
    return fig, list(axes.flat[:n])


def method_color(method_name: str) -> str:
    """Looked up when drawing, so a plugin's arm (registered after this import) gets its own colour too."""
    methods = list(ARMS)
    return PALETTE[methods.index(method_name) % len(PALETTE)] if method_name in methods else "tab:purple"


def _device_hours(r: Record) -> float | None:
    s = training_cost(r, "train_device_s")
    return s if s is None or s is UNKNOWN else s / 3600


# file stem -> (axis label, cost getter); every cost a PreTTY arm may trade against quality
COST_AXES: dict[str, tuple[str, Callable[[Record], float | None]]] = {
    "quality_vs_cost": ("training FLOPs", lambda r: training_cost(r, "train_flops")),
    "quality_vs_examples": ("labelled training examples", lambda r: training_cost(r, "train_examples")),
    "quality_vs_device_hours": ("training device-hours", _device_hours),
    "quality_vs_extra_steps": ("extra decode steps per item",
                               lambda r: cost(r, "extra_decode_steps_per_item")),
    # in-context demonstrations' prefill: drawn only where some arm has demonstrations
    "quality_vs_prompt_tokens": ("extra prompt tokens per item",
                                 lambda r: cost(r, "extra_prompt_tokens_per_item")),
}

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
        while clash := [b for b in occupied
                        if x0 < b[2] and b[0] < x0 + width and y0 < b[3] and b[1] < y0 + height]:
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


def _cost_axis(ax: Axes, values: list[float], unknown: bool) -> float:
    """Symlog x axis: free arms (cost 0) get their own tick left of the paying arms' decades; with `unknown`,
    a column right of them, behind a dotted rule, for arms of unknown cost. Returns that column's x."""
    nonzero = [v for v in values if v > 0]
    if not nonzero:
        ticks, names, right, column, rule = [0.0], ["0"], 4.0, 2.5, 1.25  # room on the right for the labels
        ax.set_xlim(-1, right + 2 * unknown)
    else:
        low, high = math.floor(math.log10(min(nonzero))), math.ceil(math.log10(max(nonzero)))
        linthresh = 10.0 ** (low - 1)
        ax.set_xscale("symlog", linthresh=linthresh, linscale=0.6)
        column, rule = 10.0 ** (high + 1), 10.0 ** (high + 0.5)
        ax.set_xlim(-0.4 * linthresh, 10.0 ** (high + (1.6 if unknown else 0.3)))
        decades = list(range(low, high + 1, max(1, (high - low) // 6)))
        ticks, names = [0.0] + [10.0 ** e for e in decades], ["0"] + [f"$10^{{{e}}}$" for e in decades]
        ax.xaxis.set_minor_locator(NullLocator())
    if unknown:
        ticks, names = ticks + [column], names + ["unknown"]
        ax.axvline(rule, color="0.6", lw=0.8, ls=":", zorder=1)
    ax.set_xticks(ticks, names)
    return column


def pareto_front(points: list[tuple[float, float]]) -> list[int]:
    """Indices of the points no other point beats on both cost (lower) and quality (higher), cheapest
    first."""
    order = sorted(range(len(points)), key=lambda i: (points[i][0], -points[i][1]))
    front, best = [], -math.inf
    for i in order:
        if points[i][1] > best:
            front.append(i)
            best = points[i][1]
    return front


def front_points(records: list[Record], get_cost: Callable[[Record], float | None]) -> list[Record]:
    """The records on the Pareto front of quality against get_cost, cheapest first. Upper bounds and arms
    whose cost is unknown (or missing) are never on it: neither is a result a cheaper arm must beat."""
    candidates = [r for r in records if deployable(r) and quality(r) is not None
                  and get_cost(r) is not None and get_cost(r) is not UNKNOWN]
    return [candidates[i] for i in pareto_front([(get_cost(r), quality(r)) for r in candidates])]


def _figure(n_panels: int, title: str) -> tuple[Figure, list[Axes]]:
    ncols = min(3, n_panels)
    nrows = math.ceil(n_panels / ncols)
    fig = Figure(figsize=(6.0 * ncols, 4.8 * nrows))
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, ncols, squeeze=False)
    # a fixed distance from the top, however tall the figure
    fig.suptitle(title, fontsize=13, y=1 - 0.1 / fig.get_figheight(), va="top")
    for ax in axes.flat[n_panels:]:
        ax.remove()
    return fig, list(axes.flat[:n_panels])


def _png(fig: Figure) -> bytes:
    out = io.BytesIO()
    fig.savefig(out, format="png", dpi=120)
    return out.getvalue()


def render_cost_plot(records: list[Record], stem: str = "quality_vs_cost", many: bool | None = None) -> bytes:
    """PNG of quality (chrF, UPOS accuracy) against one cost, one panel per task/direction, every point
    labelled with its arm (`many`: with its experiment; None: when these records span several) and the Pareto
    front drawn through the arms nothing cheaper beats."""
    x_label, get_cost = COST_AXES[stem]
    many = spans_experiments(records) if many is None else many
    by_unit = groups(records, many)
    experiment = ", ".join(distinct(records, "experiment"))
    fig, axes = _figure(len(by_unit), f"Quality vs {x_label}{': ' + experiment if experiment else ''}")
    methods_seen: set[str] = set()
    apart = False   # whether any panel draws a hollow (off-front) point
    to_label: list[tuple[Axes, list[tuple[float, float, str]]]] = []
    for ax, ((task, src, tgt), rows) in zip(axes, by_unit.items()):
        judged_by = quality_of(task, records)
        y_label, scale = judged_by.label, judged_by.scale
        shown = [r for r in rows if get_cost(r) is not None and quality(r) is not None]
        ax.set_title(f"{task}: {direction(src, tgt)}", fontsize=11)
        ax.set_ylabel(y_label)
        ax.set_xlabel(x_label)
        ax.grid(True, alpha=0.3)
        if not shown:
            ax.text(0.5, 0.5, f"no arm has both {y_label} and {x_label}", ha="center", transform=ax.transAxes)
            continue
        known = [get_cost(r) for r in shown if get_cost(r) is not UNKNOWN]
        column = _cost_axis(ax, known, unknown=len(known) < len(shown))
        points = [(column if get_cost(r) is UNKNOWN else get_cost(r), quality(r), r) for r in shown]
        for x, y, r in points:
            methods_seen.add(method(r))
            color = method_color(method(r))
            hollow = get_cost(r) is UNKNOWN or not deployable(r)
            apart |= hollow
            ax.scatter(x, y, s=36, zorder=3, lw=1.5, facecolors="none" if hollow else color, edgecolors=color)
        front = front_points(shown, get_cost)
        xs, ys = [get_cost(r) for r in front], [quality(r) for r in front]
        ax.step(xs, ys, where="post", ls="--", lw=1, color="0.35", zorder=2)
        ax.scatter(xs, ys, s=110, facecolors="none", edgecolors="0.2", lw=1, zorder=4)
        ys = [y for _, y, _ in points]
        # a lone point or a tight cluster still gets readable ticks
        span = max(max(ys) - min(ys), 0.05 * scale)
        ax.set_ylim(min(ys) - 0.1 * span, max(ys) + 0.1 * span)  # _label_points raises the top as needed
        to_label.append((ax, [(x, y, label(r, many)) for x, y, r in points]))
    handles = [Line2D([], [], marker="o", ls="", color=method_color(m), label=m)
               for m in sorted(methods_seen, key=lambda m: (rank(m), m))]
    handles.append(Line2D([], [], marker="o", ls="--", color="0.35", mfc="none", label="Pareto front"))
    if apart:
        handles.append(Line2D([], [], marker="o", ls="", color="0.35", mfc="none", mew=1.5,
                              label="hollow: upper bound (oracle) or cost unknown: off the front"))
    # margins in inches, whatever the number of panel rows: legend and note below, the title above
    inch = 1 / fig.get_figheight()
    legend_top = _legend(fig, handles, 0.45 * inch)
    fig.text(0.5, 0.08 * inch,
             "A PreTTY arm whose prior comes from a trained model\ncarries that model's training cost",
             ha="center", fontsize=8, color="0.35")
    fig.tight_layout(rect=(0, legend_top + 0.1 * inch, 1, 1 - 0.1 * inch))
    for ax, labels in to_label:  # after the layout is final: placement works in display pixels
        _label_points(ax, labels)
    return _png(fig)


def _legend(fig: Figure, handles: list[Line2D], bottom: float) -> float:
    """A legend centred above `bottom`, in as few rows as fit the figure's width; returns its top (0-1)."""
    renderer = fig.canvas.get_renderer()
    for ncol in range(len(handles), 0, -1):
        legend = fig.legend(handles=handles, loc="lower center", bbox_to_anchor=(0.5, bottom), ncol=ncol,
                            frameon=False)
        extent = legend.get_window_extent(renderer)
        if extent.width <= 0.98 * fig.bbox.width or ncol == 1:
            return extent.y1 / fig.bbox.height
        legend.remove()
    raise AssertionError("unreachable")


def arm_colors(arms: list[str]) -> dict[str, tuple[float, float, float, float]]:
    """A colour per arm, none shared: arms of one method (lora, lora-r64; every PreTTY prior) stay apart."""
    palette = colormaps["tab10" if len(arms) <= 10 else "tab20"]
    return {arm: palette(i % palette.N) for i, arm in enumerate(arms)}


def render_budget_plot(records: list[Record]) -> bytes | None:
    """PNG of quality against the data budget, a line per arm; None unless the records span two budgets."""
    if len({r.get("budget") for r in records if r.get("budget")}) < 2:
        return None
    by_unit = groups(records)
    in_order = sorted({r["arm"]: r for r in records}.values(), key=lambda r: (rank(method(r)), r["arm"]))
    colors = arm_colors([r["arm"] for r in in_order])  # the same arm has the same colour in every panel
    fig, axes = _figure(len(by_unit), "Quality vs data budget")
    for ax, ((task, src, tgt), rows) in zip(axes, by_unit.items()):
        y_label = quality_of(task, records).label
        lines: dict[str, list[tuple[int, float]]] = {}
        for r in rows:
            if r.get("budget") and quality(r) is not None:
                lines.setdefault(r["arm"], []).append((r["budget"], quality(r)))
        for r in in_order:
            if r["arm"] not in lines:
                continue
            points = sorted(lines[r["arm"]])
            upper = not deployable(r)
            ax.plot([b for b, _ in points], [q for _, q in points], color=colors[r["arm"]],
                    marker="s" if method(r) == "pretty" else "o", mfc="none" if upper else colors[r["arm"]],
                    ls=":" if upper else "--" if method(r) == "pretty" else "-",
                    label=r["arm"] + (" (upper bound)" if upper else ""))
        ax.set_xscale("log", base=2)
        ax.set_title(f"{task}: {direction(src, tgt)}", fontsize=11)
        ax.set_xlabel("data budget (examples per task direction)")
        ax.set_ylabel(y_label)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout(rect=(0, 0, 1, 0.95))
    return _png(fig)
