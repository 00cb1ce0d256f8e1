"""CLiKA tables, from the records alone: per knowledge set, each arm's accuracy in every language with its
performance (RA = acc_X / acc_en) and consistency with English (en-CO over the items answered correctly), each
with a 95% bootstrap interval; and each arm's accuracy difference to the base arm with a paired-bootstrap interval."""
from __future__ import annotations

from collections import defaultdict

import numpy as np

from eval.knowledge import en_consistency, relative_accuracy
from eval.records import Record, by_experiment, label, metric, reference_arm, sort_key
from eval.report_stats import RESAMPLES, SEED
from eval.tables import Table


def _correct_by_id(r: Record) -> dict[str, int]:
    per_item = r.get("per_item") or {}
    return dict(zip(per_item.get("id") or [], per_item.get("correct") or []))


def _paired(a: Record, b: Record) -> tuple[np.ndarray, np.ndarray] | None:
    """Both records' right/wrong on the item ids they share, resampled the same way: two (RESAMPLES, n) arrays."""
    ca, cb = _correct_by_id(a), _correct_by_id(b)
    ids = sorted(set(ca) & set(cb))
    if not ids:
        return None
    x, y = (np.array([c[i] for i in ids], dtype=bool) for c in (ca, cb))
    idx = np.random.default_rng(SEED).integers(0, len(ids), size=(RESAMPLES, len(ids)))
    return x[idx], y[idx]


def _interval(values: np.ndarray) -> str:
    values = values[~np.isnan(values)]
    if not len(values):
        return ""
    lo, hi = np.percentile(values, [2.5, 97.5])
    return f" [{lo:.2f}–{hi:.2f}]"


def _ra_co(en: Record, x: Record) -> tuple[str, str]:
    """RA and en-CO, each with its 95% bootstrap interval (items resampled jointly in both languages)."""
    ra = relative_accuracy(metric(x, "accuracy"), metric(en, "accuracy"))
    co = en_consistency(_correct_by_id(en), _correct_by_id(x))
    ra_text, co_text = "n/a" if ra is None else f"{ra:.2f}", "n/a" if co is None else f"{co:.2f}"
    sampled = _paired(en, x)
    if sampled is not None:
        e, c = sampled
        with np.errstate(invalid="ignore", divide="ignore"):
            ra_text += _interval(c.mean(axis=1) / e.mean(axis=1)) if ra is not None else ""
            co_text += _interval((e & c).sum(axis=1) / (e | c).sum(axis=1)) if co is not None else ""
    return ra_text, co_text


def _by_set(records: list[Record]) -> dict[str, dict[str, dict[str, Record]]]:
    """set -> arm label -> language -> record, arms in report order."""
    by_set: dict[str, dict[str, dict[str, Record]]] = defaultdict(dict)
    for r in sorted((r for r in records if r.get("task") == "knowledge"), key=sort_key):
        by_set[r["src"]].setdefault(label(r), {})[r["tgt"]] = r
    return by_set


def _langs(arms: dict[str, dict[str, Record]]) -> list[str]:
    return sorted({lang for per_lang in arms.values() for lang in per_lang}, key=lambda l: (l != "en", l))


def clika_tables(records: list[Record]) -> list[Table]:
    tables = []
    for name, arms in _by_set(records).items():
        langs = _langs(arms)
        header = ["arm"] + [f"{lang} acc %" if lang == "en" else f"{lang} acc % / RA / en-CO" for lang in langs]
        rows, warnings = [], []
        for arm, per_lang in arms.items():
            en = per_lang.get("en")
            row = [arm]
            for lang in langs:
                r = per_lang.get(lang)
                if r is None:
                    row.append("")
                    continue
                acc = metric(r, "accuracy")
                if (metric(r, "top_position_share") or 0) > 0.6:
                    warnings.append(f"{arm} {lang}")
                if lang == "en" or en is None:
                    row.append(f"{100 * acc:.1f}")
                    continue
                ra, co = _ra_co(en, r)
                row.append(f"{100 * acc:.1f} / {ra} / {co}")
            rows.append(row)
        note = ("RA = acc_X / acc_en (performance); en-CO = |C_en ∩ C_X| / |C_en ∪ C_X| over the items answered "
                "correctly, the same item ids in both languages (consistency); [95% bootstrap interval], items "
                "resampled jointly in both languages. Chance-corrected accuracy and the accuracies' own intervals "
                "are in the per-language tables above.")
        if warnings:
            note += (" Warning: one option position takes over 60% of the answers for " + ", ".join(warnings)
                     + " — accuracy there says little about knowledge.")
        tables.append(Table(f"knowledge: {name}", header, rows, note))
    return tables + difference_tables(records)


def difference_tables(records: list[Record]) -> list[Table]:
    """Each arm's accuracy minus its experiment's base arm's (the first arm when there is no base), per set
    and language, with a paired-bootstrap 95% interval over the shared items; * where it excludes zero.
    A sweep gets a table per experiment: its arms are set against their own base, never another budget's."""
    tables = []
    knowledge = [r for r in records if r.get("task") == "knowledge"]
    for _, members in sorted(by_experiment(knowledge).items()):
        for name, arms in _by_set(members).items():
            if len(arms) < 2:
                continue
            reference = label(reference_arm([next(iter(per_lang.values())) for per_lang in arms.values()]))
            # in a sweep the reference's label names its experiment, and so the table's title
            tables.append(_difference_table(name, arms, reference))
    return tables


def _difference_table(where: str, arms: dict[str, dict[str, Record]], reference: str) -> Table:
    langs = _langs(arms)
    rows = []
    for arm, per_lang in arms.items():
        if arm == reference:
            continue
        row = [arm]
        for lang in langs:
            r, ref = per_lang.get(lang), arms[reference].get(lang)
            sampled = _paired(r, ref) if r is not None and ref is not None else None
            if sampled is None:
                row.append("")
                continue
            diff = 100 * (metric(r, "accuracy") - metric(ref, "accuracy"))
            a, b = sampled
            lo, hi = np.percentile(100 * (a.mean(axis=1) - b.mean(axis=1)), [2.5, 97.5])
            row.append(f"{diff:+.1f} [{lo:+.1f}, {hi:+.1f}]" + ("*" if lo > 0 or hi < 0 else ""))
        rows.append(row)
    return Table(f"knowledge: {where}, accuracy difference to {reference} (points)", ["arm"] + langs, rows,
                 "Paired bootstrap over the shared items (95% interval); * where it excludes zero.")
