"""CLiKA tables, from the records alone: per knowledge set, each arm's accuracy in every language beside
chance, with its performance (RA, normalised by chance as upstream CLiKA) and consistency with English (en-CO
over the items answered correctly, beside what independent answers would reach), each with a 95% bootstrap
interval; and each arm's accuracy difference to the base arm with a paired-bootstrap interval."""
from __future__ import annotations

import numpy as np

from eval.knowledge import (accuracy_ratio, chance_p_value, en_consistency, independent_consistency,
                            relative_accuracy)
from eval.records import (Record, by_experiment, grouped, label, metric, reference_arm, sort_key,
                           spans_experiments)
from eval.stats import paired_resamples, percentile_interval
from eval.tables import Table

# 1 / options, for records written before they kept their chance level
_OPTIONS = {"x_csqa": 5, "x_copa": 2}
FLAG = "†"   # English accuracy not above chance at 95%: RA relative to it means nothing


def _correct_by_id(r: Record) -> dict[str, int]:
    per_item = r.get("per_item") or {}
    return dict(zip(per_item.get("id") or [], per_item.get("correct") or []))


def chance(r: Record) -> float:
    return metric(r, "chance") or 1 / _OPTIONS.get(r.get("src"), 4)


def above_chance(r: Record) -> bool:
    """English accuracy above chance at 95% (one-sided binomial test over the record's items)."""
    correct = (r.get("per_item") or {}).get("correct")
    n = len(correct) if correct else r.get("n_items") or 0
    k = sum(correct) if correct else round((metric(r, "accuracy") or 0) * n)
    return n > 0 and chance_p_value(k, n, chance(r)) < 0.05


def _paired(a: Record, b: Record) -> tuple[np.ndarray, np.ndarray] | None:
    """Both records' right/wrong on the item ids they share, resampled the same way: two (RESAMPLES, n)
    arrays."""
    ca, cb = _correct_by_id(a), _correct_by_id(b)
    ids = sorted(set(ca) & set(cb))
    if not ids:
        return None
    x, y = (np.array([c[i] for i in ids], dtype=bool) for c in (ca, cb))
    return paired_resamples(x, y)


def _interval(values: np.ndarray) -> str:
    """[2.5th–97.5th percentile]; resamples at +inf (an undefined ratio) make an upper bound of ∞."""
    found = percentile_interval(values)
    if found is None:
        return ""
    lo, hi = found
    return f" [{lo:.2f}–{'∞' if hi > 1e300 else f'{hi:.2f}'}]"


def _ra_co(en: Record, x: Record) -> tuple[str, str]:
    """RA and en-CO, each with its 95% bootstrap interval (items resampled jointly in both languages, RA by
    the same formula on every resample: where English falls to chance or below there is no RA, counted as
    ∞)."""
    c = chance(en)
    ra = relative_accuracy(metric(x, "accuracy"), metric(en, "accuracy"), c)
    co = en_consistency(_correct_by_id(en), _correct_by_id(x))
    ra_text, co_text = "n/a" if ra is None else f"{ra:.2f}", "n/a" if co is None else f"{co:.2f}"
    sampled = _paired(en, x)
    if sampled is not None:
        e, h = sampled
        acc_e, acc_h = e.mean(axis=1), h.mean(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            ra_sampled = np.where(acc_e > c, np.maximum(0.0, (acc_h - c) / (acc_e - c)), np.inf)
            ra_text += _interval(ra_sampled) if ra is not None else ""
            co_text += _interval((e & h).sum(axis=1) / (e | h).sum(axis=1)) if co is not None else ""
    return ra_text, co_text


def _ratio(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def _by_set(records: list[Record], many: bool) -> dict[str, dict[str, dict[str, Record]]]:
    """set -> arm label -> language -> record, arms in report order."""
    knowledge = sorted((r for r in records if r.get("task") == "knowledge"), key=lambda r: sort_key(r, many))
    return {name: {arm: {r["tgt"]: r for r in rows}
                   for arm, rows in grouped(members, lambda r: label(r, many)).items()}
            for name, members in grouped(knowledge, lambda r: r["src"]).items()}


def _langs(arms: dict[str, dict[str, Record]]) -> list[str]:
    return sorted({lang for per_lang in arms.values() for lang in per_lang}, key=lambda l: (l != "en", l))


def clika_tables(records: list[Record], many: bool | None = None) -> list[Table]:
    """A table per knowledge set, then the differences to base. `many`: whether arms are labelled with their
    experiment (None: whether these records span several)."""
    many = spans_experiments(records) if many is None else many
    tables = []
    for name, arms in _by_set(records, many).items():
        langs = _langs(arms)
        header = ["arm", "lang", "acc %", "chance %", "RA", "acc_X / acc_en", "en-CO", "en-CO if independent"]
        rows, warnings, flagged = [], [], False
        for arm, per_lang in arms.items():
            en = per_lang.get("en")
            flag = FLAG if en is not None and not above_chance(en) else ""
            flagged |= bool(flag)
            for lang in langs:
                r = per_lang.get(lang)
                if r is None:
                    continue
                acc = metric(r, "accuracy")
                if (metric(r, "top_position_share") or 0) > 0.6:
                    warnings.append(f"{arm} {lang}")
                shown = f"{100 * acc:.1f}" + (flag if lang == "en" else "")
                row = [arm, lang, shown, f"{100 * chance(r):.1f}"]
                if lang == "en" or en is None:
                    rows.append(row + [""] * 4)
                    continue
                ra, co = _ra_co(en, r)
                independent = independent_consistency(metric(en, "accuracy"), acc)
                rows.append(row + [ra + flag, _ratio(accuracy_ratio(acc, metric(en, "accuracy"))), co,
                                   _ratio(independent)])
        note = ("RA = max(0, (acc_X − c) / (acc_en − c)), c = chance = 1 / options (upstream CLiKA's "
                "normalisation; n/a when acc_en ≤ c), the performance level; acc_X / acc_en is the raw "
                "ratio, about 1 for a model at chance in both languages. en-CO = |C_en ∩ C_X| / |C_en ∪ "
                "C_X| over the items answered correctly, the same item ids in both languages "
                "(consistency); beside it, the en-CO two independent answerers at these accuracies a = "
                "acc_en, b = acc_X would reach, ab / (a + b − ab) (c / (2 − c) for two at chance): en-CO "
                "above it is shared knowledge, at it mere overlap. [95% bootstrap interval], items "
                "resampled jointly in both languages and RA recomputed by the same formula (∞ where a "
                "resample's English falls to chance). Chance-corrected accuracy and the accuracies' own "
                "intervals are in the per-language tables above.")
        if flagged:
            note += (f" {FLAG}: English accuracy not above chance at 95% (one-sided binomial test, "
                     "p ≥ 0.05) — the arm's RA is relative to noise.")
        if warnings:
            note += (" Warning: one option position takes over 60% of the answers for " + ", ".join(warnings)
                     + " — accuracy there says little about knowledge.")
        scorings = sorted({sig for per_lang in arms.values() for r in per_lang.values()
                           if (sig := (r.get("signatures") or {}).get("knowledge"))})
        if scorings:
            note += " Answers: " + "; ".join(scorings) + "."
        tables.append(Table(f"knowledge: {name}", header, rows, note))
    return tables + difference_tables(records, many)


def difference_tables(records: list[Record], many: bool | None = None) -> list[Table]:
    """Each arm's accuracy minus its experiment's base arm's (the first arm when there is no base), per set
    and language, with a paired-bootstrap 95% interval over the shared items; * where it excludes zero.
    A sweep gets a table per experiment: its arms are set against their own base, never another budget's."""
    many = spans_experiments(records) if many is None else many
    tables = []
    knowledge = [r for r in records if r.get("task") == "knowledge"]
    for _, members in sorted(by_experiment(knowledge).items()):
        for name, arms in _by_set(members, many).items():
            if len(arms) < 2:
                continue
            first = [next(iter(per_lang.values())) for per_lang in arms.values()]   # a record per arm
            reference = label(reference_arm(first), many)
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
            lo, hi = percentile_interval(100 * (a.mean(axis=1) - b.mean(axis=1)))
            row.append(f"{diff:+.1f} [{lo:+.1f}, {hi:+.1f}]" + ("*" if lo > 0 or hi < 0 else ""))
        rows.append(row)
    return Table(f"knowledge: {where}, accuracy difference to {reference} (points)", ["arm"] + langs, rows,
                 "Paired bootstrap over the shared items (95% interval); * where it excludes zero.")
