"""The PreTTY part of the report: how much of the gap between the base and SFT arms each prior source
closes at each k, and its quality as a share of SFT's (against the arms of the same experiment, so the same
budget), and quality against k, from records alone."""
from __future__ import annotations

import io
from collections import defaultdict
from pathlib import Path


from eval.records import Record, deployable, grouped, quality, quality_of, reference_arm, unit
from eval.report_plots import panel_grid
from eval.tables import Table


UPPER = " (upper bound)"


def _units(records: list[Record]) -> dict[tuple[str, str, str, str], list[Record]]:
    """Records per (task, src, tgt, experiment), each in the order given: the curves compare an experiment's
    arms with its own base and SFT."""
    return dict(sorted(grouped(records, lambda r: (*unit(r), r.get("experiment") or "")).items()))


def _curves(rows: list[Record]) -> tuple[dict[str, dict[int, float]], float | None, float | None]:
    """{prior source: {k: quality}} with k = 0 taken from the base arm when no k = 0 arm was run; base; sft.
    An upper bound's source (an oracle prior, or one that says it is not deployable) is named so."""
    reference = reference_arm(rows)   # the experiment's own base arm, not any arm of method base
    base = quality(reference) if reference is not None and reference.get("method") == "base" else None
    sft = next((quality(r) for r in rows if r.get("arm") == "sft"), None)
    curves: dict[str, dict[int, float]] = defaultdict(dict)
    for r in rows:
        prior, q = r.get("prior") or {}, quality(r)
        if r.get("method") == "pretty" and prior.get("source") and q is not None:
            curves[_prior_name(r) + ("" if deployable(r) else UPPER)][int(prior.get("k", 0))] = q
    for points in curves.values():
        if 0 not in points and base is not None:
            points[0] = base
    return dict(sorted(curves.items())), base, sft


def _prior_name(r: Record) -> str:
    """A prior source, with the model it comes from when that is not the arm named like the source: two sft
    priors from two sft arms, or two task models, are two curves, not one overwritten by the other."""
    prior = r.get("prior") or {}
    source, origin = prior["source"], prior.get("from_arm")
    if source == "task_model":
        origin = "/".join(Path(((r.get("weights") or {}).get("prior") or {}).get("path") or "?").parts[-3:])
    return source if origin in (None, source) else f"{source} ({origin})"


def _where(task: str, src: str, tgt: str, experiment: str, many: bool) -> str:
    return f"{task} {src}→{tgt}" + (f" ({experiment})" if many else "")


GAP_NOTE = ("Gap closed: (PreTTY − base) / (SFT − base), the base and SFT arms of the same experiment: "
            "0% is the base arm, 100% the SFT arm, below 0% worse than base; n/a where SFT does not score "
            "above base (no gap to close). A small gap makes the share noisy: the quality table's p vs SFT "
            "of the base arm says whether the gap is significant. k = 0 is the base arm where no k = 0 arm "
            "was run.")
SHARE_NOTE = ("% of SFT: PreTTY's quality as a raw share of SFT's. Its floor is the base arm's share (in the "
              "title), often well above 0%, so read the gap closed first.")


def _gap_closed(q: float, base: float | None, sft: float) -> str:
    return "n/a" if base is None or sft <= base else f"{100 * (q - base) / (sft - base):.0f}%"


def recovery_tables(records: list[Record]) -> list[Table]:
    """Per unit, two tables with prior sources as rows and k as columns: the share of the base→SFT gap each
    PreTTY arm closes (the headline), then its quality as a raw share of SFT's (units whose SFT arm scored 0
    have no such share and show only the gap)."""
    tables = []
    units = _units(records)
    many = len({u[3] for u in units}) > 1
    for (task, src, tgt, experiment), rows in units.items():
        curves, base, sft = _curves(rows)
        if not curves or sft is None:
            continue
        ks = sorted({k for points in curves.values() for k in points})
        header = ["prior"] + [f"k={k}" for k in ks]
        where, label = _where(task, src, tgt, experiment, many), quality_of(task, records).label
        gap = f"base {base:.3g} → SFT {sft:.3g}" if base is not None else f"no base arm; SFT {sft:.3g}"
        tables.append(Table(f"{where}: share of the {label} gap closed ({gap})", header,
                            [[source] + [_gap_closed(points[k], base, sft) if k in points else "" for k in ks]
                             for source, points in curves.items()], GAP_NOTE))
        if not sft:
            continue
        title = f"{where}: {label} as % of SFT's ({sft:.3g})"
        if base is not None:
            title += f"; base = {100 * base / sft:.0f}%"
        rows_out = [[source] + [f"{100 * points[k] / sft:.0f}%" if k in points else "" for k in ks]
                    for source, points in curves.items()]
        tables.append(Table(title, header, rows_out, SHARE_NOTE))
    return tables


def render_k_plot(records: list[Record]) -> bytes | None:
    """PNG of quality against k, one line per prior source, base and SFT as reference lines; None without
    priors."""
    all_units = _units(records)
    many = len({u[3] for u in all_units}) > 1
    units = {u: _curves(rows) for u, rows in all_units.items()}
    units = {u: c for u, c in units.items() if c[0]}
    if not units:
        return None
    fig, axes = panel_grid(len(units))
    # one colour per prior source in every panel (translation and tagging panels list different sources);
    # markers shrink from line to line, so a line with the same values as another still shows
    sources = sorted({source for curves, _, _ in units.values() for source in curves})
    color = {source: f"C{i % 10}" for i, source in enumerate(sources)}
    for ax, ((task, src, tgt, experiment), (curves, base, sft)) in zip(axes, units.items()):
        for i, (source, points) in enumerate(curves.items()):
            ks = sorted(points)
            ax.plot(ks, [points[k] for k in ks], marker="o", markersize=max(3, 9 - 1.5 * i),
                    color=color[source], ls="--" if source.endswith(UPPER) else "-", label=f"prior: {source}")
        if sft is not None:
            ax.axhline(sft, color="black", lw=1, alpha=0.6, label="SFT arm")
        if base is not None:
            ax.axhline(base, color="0.5", lw=1, ls=":", label="base arm (k = 0)")
        ax.set_xticks(sorted({k for points in curves.values() for k in points}))
        ax.set_xlabel("prior tokens k")
        ax.set_ylabel(quality_of(task, records).label)
        ax.set_title(_where(task, src, tgt, experiment, many), fontsize=11)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle("PreTTY: quality against the number of prior tokens", fontsize=12)
    fig.tight_layout()
    out = io.BytesIO()
    fig.savefig(out, format="png", dpi=110)
    return out.getvalue()
