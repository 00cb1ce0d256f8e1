"""CLiKA tables: per knowledge set, each arm's accuracy in every language with its performance (RA = acc_X /
acc_en) and consistency with English (en-CO over the items answered correctly), from the records alone."""
from __future__ import annotations

from collections import defaultdict

from eval.knowledge import en_consistency, relative_accuracy
from eval.records import Record, label, metric, sort_key
from eval.tables import Table


def _correct_by_id(r: Record) -> dict[str, int]:
    per_item = r.get("per_item") or {}
    return dict(zip(per_item.get("id") or [], per_item.get("correct") or []))


def clika_tables(records: list[Record]) -> list[Table]:
    by_set: dict[str, dict[str, dict[str, Record]]] = defaultdict(lambda: defaultdict(dict))
    for r in records:
        if r.get("task") == "knowledge":
            by_set[r["src"]][label(r)][r["tgt"]] = r
    tables = []
    for name, arms in by_set.items():
        langs = sorted({lang for per_lang in arms.values() for lang in per_lang}, key=lambda l: (l != "en", l))
        header = ["arm"] + [f"{lang} acc %" if lang == "en" else f"{lang} acc % / RA / en-CO" for lang in langs]
        rows, warnings = [], []
        for arm, per_lang in sorted(arms.items(), key=lambda kv: sort_key(next(iter(kv[1].values())))):
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
                ra = relative_accuracy(acc, metric(en, "accuracy"))
                co = en_consistency(_correct_by_id(en), _correct_by_id(r))
                row.append(f"{100 * acc:.1f} / {'n/a' if ra is None else f'{ra:.2f}'} / "
                           f"{'n/a' if co is None else f'{co:.2f}'}")
            rows.append(row)
        note = ("RA = acc_X / acc_en (performance); en-CO = |C_en ∩ C_X| / |C_en ∪ C_X| over the items answered "
                "correctly, the same item ids in both languages (consistency). Options scored by mean token "
                "log-likelihood; chance-corrected accuracy and 95% intervals are in the per-language tables above.")
        if warnings:
            note += (" Warning: one option position takes over 60% of the answers for " + ", ".join(warnings)
                     + " — accuracy there says little about knowledge.")
        tables.append(Table(f"knowledge: {name}", header, rows, note))
    return tables
