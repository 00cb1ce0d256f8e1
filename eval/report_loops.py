"""How much of an arm's gap to SFT is loops: the gap in mean per-item quality split exactly into the part on
the items where the arm's output degenerated (eval/degeneration.py) and the part on the others, from the
records' per-item scores alone."""
from __future__ import annotations

from eval.records import (Record, by_experiment, direction, groups, label, metric, quality_of,
                          spans_experiments)
from eval.tables import Table

NOTE = (
    "Degenerate: the output ran to the token limit, or a word n-gram (n ≤ 4; characters for zh/ja) "
    "repeats 3 or more times in a row; refs: the same test on the references, what the rate reads when "
    "nothing loops. Gap: SFT's mean per-item score minus the arm's, over every item (mean sentence chrF, "
    "or mean sentence accuracy: it adds up over items, unlike the corpus score of the main table), split "
    "exactly into the items where the arm degenerated and the others. Loops' share: the first part over "
    "the gap, n/a unless both parts are between 0 and the gap (where the arm is ahead elsewhere, a share "
    "would mislead). Items that loop may also be the harder ones: the share says where the gap is, not "
    "what stopping the loops would recover.")


def _scores(r: Record, key: str) -> list[float] | None:
    per_item = r.get("per_item") or {}
    values = per_item.get(key, per_item.get("accuracy"))
    return values if isinstance(values, list) and "degenerate" in per_item else None


def _loop_rows(rows: list[Record], task: str, many: bool) -> list[list[str]]:
    sft = next((r for r in rows if r["arm"] == "sft"), None)
    judged_by = quality_of(task, rows)
    scale = 1 if judged_by.scale > 1 else 100
    sft_scores = _scores(sft, judged_by.key) if sft else None
    if sft_scores is None:
        return []
    refs = sft["per_item"]["reference"]
    out = []
    for r in rows:
        scores = _scores(r, judged_by.key)
        if r is sft or scores is None or r["per_item"].get("reference") != refs:
            continue
        flags, n = r["per_item"]["degenerate"], len(refs)
        diffs = [s - a for s, a in zip(sft_scores, scores)]
        gap = sum(diffs) / n
        on_loops = sum(d for d, f in zip(diffs, flags) if f) / n
        rest = gap - on_loops
        share = (f"{100 * on_loops / gap:.0f}%" if gap > 0 and 0 <= on_loops <= gap and 0 <= rest else "n/a")
        reference_rate = metric(r, "reference_degenerate_rate")
        out.append([label(r, many), f"{100 * sum(flags) / n:.0f}",
                    "n/a" if reference_rate is None else f"{100 * reference_rate:.0f}",
                    f"{scale * gap:.2f}", f"{scale * on_loops:.2f}", f"{scale * rest:.2f}", share])
    return out


def loop_tables(records: list[Record], many: bool | None = None) -> list[Table]:
    """Per unit (and experiment): every arm against its experiment's SFT arm. Records without per-item
    degeneration flags (older ones, scoring tasks) have none."""
    many = spans_experiments(records) if many is None else many
    tables = []
    for (task, src, tgt), rows in groups(records, many).items():
        body = [row for members in by_experiment(rows).values() for row in _loop_rows(members, task, many)]
        if body:
            tables.append(Table(f"{task}: {direction(src, tgt)}",
                                ["arm", "degenerate %", "refs degenerate %", "gap to SFT",
                                 "on its degenerate items", "on the others", "loops' share of the gap"],
                                body, NOTE, numeric=[False] + [True] * 6))
    return tables
