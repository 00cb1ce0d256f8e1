"""The report's cost plots: quality against each kind of cost with the Pareto front marked, and quality
against the data budget per arm when a sweep varied it. One panel per task and language pair."""
from __future__ import annotations

import io
import math
from typing import Callable

# The Agg canvas directly, not pyplot: headless, and importing this never switches a caller's backend.
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import NullLocator

from eval.records import QUALITY, Record, cost, direction, distinct, groups, label, method, metric, rank

METHOD_COLORS = {"base": "tab:gray", "sft": "tab:blue", "lora": "tab:orange", "pretty": "tab:green",
                 "cpt": "tab:purple", "mixed": "tab:brown"}


def _device_hours(r: Record) -> float | None:
    s = cost(r, "train_device_s")
    return None if s is None else s / 3600


# file stem -> (axis label, cost getter); every cost a PreTTY arm may trade against quality
COST_AXES: dict[str, tuple[str, Callable[[Record], float | None]]] = {
    "quality_vs_cost": ("training FLOPs", lambda r: cost(r, "train_flops")),
    "quality_vs_examples": ("labelled training examples", lambda r: cost(r, "train_examples")),
    "quality_vs_device_hours": ("training device-hours", _device_hours),
    "quality_vs_extra_steps": ("extra decode steps per item", lambda r: cost(r, "extra_decode_steps_per_item")),
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


def _cost_axis(ax: Axes, values: list[float]) -> None:
    """Symlog x axis: free arms (cost 0) get their own tick left of the paying arms' decades."""
    nonzero = [v for v in values if v > 0]
    if not nonzero:
        ax.set_xlim(-1, 4)  # room on the right for the labels
        ax.set_xticks([0], ["0"])
        return
    low, high = math.floor(math.log10(min(nonzero))), math.ceil(math.log10(max(nonzero)))
    linthresh = 10.0 ** (low - 1)
    ax.set_xscale("symlog", linthresh=linthresh, linscale=0.6)
    ax.set_xlim(-0.4 * linthresh, 10.0 ** (high + 0.3))
    decades = list(range(low, high + 1, max(1, (high - low) // 6)))
    ax.set_xticks([0] + [10.0 ** e for e in decades], ["0"] + [f"$10^{{{e}}}$" for e in decades])
    ax.xaxis.set_minor_locator(NullLocator())


def pareto_front(points: list[tuple[float, float]]) -> list[int]:
    """Indices of the points no other point beats on both cost (lower) and quality (higher), cheapest first."""
    order = sorted(range(len(points)), key=lambda i: (points[i][0], -points[i][1]))
    front, best = [], -math.inf
    for i in order:
        if points[i][1] > best:
            front.append(i)
            best = points[i][1]
    return front


def _figure(n_panels: int, title: str) -> tuple[Figure, list[Axes]]:
    ncols = min(3, n_panels)
    nrows = math.ceil(n_panels / ncols)
    fig = Figure(figsize=(6.0 * ncols, 4.8 * nrows))
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, ncols, squeeze=False)
    fig.suptitle(title, fontsize=13, y=1 - 0.1 / fig.get_figheight(), va="top")   # a fixed distance from the top, however tall
    for ax in axes.flat[n_panels:]:
        ax.remove()
    return fig, list(axes.flat[:n_panels])


def _png(fig: Figure) -> bytes:
    out = io.BytesIO()
    fig.savefig(out, format="png", dpi=120)
    return out.getvalue()


def render_cost_plot(records: list[Record], stem: str = "quality_vs_cost") -> bytes:
    """PNG of quality (chrF, UPOS accuracy) against one cost, one panel per task/direction, every point
    labelled with its arm and the Pareto front drawn through the arms nothing cheaper beats."""
    x_label, get_cost = COST_AXES[stem]
    by_unit = groups(records)
    experiment = ", ".join(distinct(records, "experiment"))
    fig, axes = _figure(len(by_unit), f"Quality vs {x_label}{': ' + experiment if experiment else ''}")
    methods_seen: set[str] = set()
    to_label: list[tuple[Axes, list[tuple[float, float, str]]]] = []
    for ax, ((task, src, tgt), rows) in zip(axes, by_unit.items()):
        key, y_label, scale = QUALITY.get(task, QUALITY["mt"])
        points = [(get_cost(r), metric(r, key), r) for r in rows]
        points = [(x, y, r) for x, y, r in points if x is not None and y is not None]
        ax.set_title(f"{task}: {direction(src, tgt)}", fontsize=11)
        ax.set_ylabel(y_label)
        ax.set_xlabel(x_label)
        ax.grid(True, alpha=0.3)
        if not points:
            ax.text(0.5, 0.5, f"no arm has both {y_label} and {x_label}", ha="center", transform=ax.transAxes)
            continue
        for x, y, r in points:
            methods_seen.add(method(r))
            ax.scatter(x, y, s=36, color=METHOD_COLORS.get(method(r), "tab:purple"), zorder=3)
        front = [points[i] for i in pareto_front([(x, y) for x, y, _ in points])]
        ax.step([x for x, _, _ in front], [y for _, y, _ in front], where="post", ls="--", lw=1, color="0.35",
                zorder=2)
        ax.scatter([x for x, _, _ in front], [y for _, y, _ in front], s=110, facecolors="none",
                   edgecolors="0.2", lw=1, zorder=4)
        _cost_axis(ax, [x for x, _, _ in points])
        ys = [y for _, y, _ in points]
        span = max(max(ys) - min(ys), 0.05 * scale)  # a lone point or a tight cluster still gets readable ticks
        ax.set_ylim(min(ys) - 0.1 * span, max(ys) + 0.1 * span)  # _label_points raises the top as needed
        to_label.append((ax, [(x, y, label(r)) for x, y, r in points]))
    handles = [Line2D([], [], marker="o", ls="", color=METHOD_COLORS.get(m, "tab:purple"), label=m)
               for m in sorted(methods_seen, key=lambda m: (rank(m), m))]
    handles.append(Line2D([], [], marker="o", ls="--", color="0.35", mfc="none", label="Pareto front"))
    # margins in inches, whatever the number of panel rows: legend and note below, the title above
    inch = 1 / fig.get_figheight()
    fig.legend(handles=handles, loc="lower center", bbox_to_anchor=(0.5, 0.45 * inch), ncol=len(handles), frameon=False)
    fig.text(0.5, 0.08 * inch, "A PreTTY arm whose prior comes from a trained model\ncarries that model's training cost",
             ha="center", fontsize=8, color="0.35")
    fig.tight_layout(rect=(0, 0.95 * inch, 1, 1 - 0.1 * inch))
    for ax, labels in to_label:  # after the layout is final: placement works in display pixels
        _label_points(ax, labels)
    return _png(fig)


def render_budget_plot(records: list[Record]) -> bytes | None:
    """PNG of quality against the data budget, a line per arm; None unless the records span two budgets."""
    if len({r.get("budget") for r in records if r.get("budget")}) < 2:
        return None
    by_unit = groups(records)
    fig, axes = _figure(len(by_unit), "Quality vs data budget")
    for ax, ((task, src, tgt), rows) in zip(axes, by_unit.items()):
        key, y_label, _ = QUALITY.get(task, QUALITY["mt"])
        lines: dict[str, list[tuple[int, float]]] = {}
        for r in rows:
            if r.get("budget") and metric(r, key) is not None:
                lines.setdefault(r["arm"], []).append((r["budget"], metric(r, key)))
        for arm, points in sorted(lines.items(), key=lambda kv: (rank(kv[0].split("-")[0]), kv[0])):
            points.sort()
            ax.plot([b for b, _ in points], [q for _, q in points], marker="o", label=arm,
                    color=METHOD_COLORS.get(arm.split("-")[0]) if arm.split("-")[0] != "pretty" else None)
        ax.set_xscale("log", base=2)
        ax.set_title(f"{task}: {direction(src, tgt)}", fontsize=11)
        ax.set_xlabel("data budget (examples per task direction)")
        ax.set_ylabel(y_label)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout(rect=(0, 0, 1, 0.95))
    return _png(fig)
