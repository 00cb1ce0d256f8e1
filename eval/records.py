"""Result records as the report reads them: loading and checking results.jsonl files (one run, or every
run of a sweep), and the small accessors every part of the report shares."""
from __future__ import annotations

import json
import re
from collections import defaultdict
from pathlib import Path
from typing import Any

from core.errors import UserError
from core.languages import LANGUAGES

RESULTS = "results.jsonl"
# The quality each task is judged by: metric key, label, full scale
QUALITY = {"mt": ("chrf", "chrF", 100.0), "pos": ("upos_accuracy", "UPOS accuracy", 1.0),
           "knowledge": ("accuracy", "accuracy", 1.0), "conductivity": ("xrr", "XRR", 1.0)}

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
                records.append(check(json.loads(line)))
            except (json.JSONDecodeError, ValueError) as e:
                raise UserError(f"{path}:{n}: {e}") from None
    if not records:
        raise UserError(f"{path}: no results (the file is empty)")
    return records


def check(record: Any) -> Record:
    if not isinstance(record, dict):
        raise ValueError(f"expected a JSON object, got {type(record).__name__}")
    if not isinstance(record.get("arm"), str) or not record["arm"]:
        raise ValueError("missing 'arm' (a non-empty string)")
    for section in ("metrics", "cost", "signatures", "weights", "prior", "per_item"):
        if record.get(section) is not None and not isinstance(record[section], dict):
            raise ValueError(f"'{section}' must be an object or null")
    samples = record.get("samples")
    if samples is not None and not (isinstance(samples, list) and all(isinstance(s, dict) for s in samples)):
        raise ValueError("'samples' must be a list of objects")
    per_item = record.get("per_item") or {}
    outputs, references = per_item.get("output"), per_item.get("reference")
    if (outputs is None) != (references is None) or (outputs is not None and not (
            isinstance(outputs, list) and isinstance(references, list) and len(outputs) == len(references))):
        raise ValueError("'per_item' needs 'output' and 'reference' as lists of the same length, or neither")
    for section in ("metrics", "cost"):
        for key, value in (record.get(section) or {}).items():
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
                raise ValueError(f"{section}.{key}: expected a number, got {value!r}")
    return record


def method(r: Record) -> str:
    return r.get("method") or r["arm"].split("-")[0]


def metric(r: Record, key: str) -> float | None:
    return (r.get("metrics") or {}).get(key)


def cost(r: Record, key: str) -> float | None:
    return (r.get("cost") or {}).get(key)


class Unknown:
    """A training cost nobody recorded (an outside model's training): printed "unknown", never taken as 0."""
    def __repr__(self) -> str:
        return "unknown"


UNKNOWN = Unknown()
# The ledger fields that describe training; eval.run writes them as null when the training cost is unknown.
TRAINING_FIELDS = ("train_examples", "train_tokens", "train_flops", "train_wall_s", "train_device_s",
                   "train_setup_s", "train_peak_mem_mb", "train_mfu")


def training_cost_known(r: Record) -> bool:
    """False when the record says its training cost is unknown (train_flops present and null); records
    written before unknown costs existed never say so."""
    costs = r.get("cost") or {}
    return not ("train_flops" in costs and costs["train_flops"] is None)


def training_cost(r: Record, key: str) -> float | None | Unknown:
    """A cost field, UNKNOWN for a training field of a record whose training cost is unknown."""
    return UNKNOWN if key in TRAINING_FIELDS and not training_cost_known(r) else cost(r, key)


def deployable(r: Record) -> bool:
    """False for an upper bound (an oracle prior reads the reference) or a prior that declares itself not
    deployable; such an arm is drawn apart, never on a Pareto front, never in break-even."""
    prior = r.get("prior") or {}
    if prior.get("deployable") is not None:
        return bool(prior["deployable"])
    return prior.get("source") != "oracle"


def rank(method_name: str) -> int:
    # Reading order: the zero-shot baseline, then arms that pay for training, then PreTTY arms.
    return {"base": 0, "pretty": 2}.get(method_name, 1)


def sort_key(r: Record) -> tuple:
    natural = [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", label(r))]  # k2 before k10
    return rank(method(r)), natural


def label(r: Record) -> str:
    """The arm, prefixed by its experiment when a report spans several (a sweep)."""
    return f"{r['experiment']}: {r['arm']}" if r.get("_many") and r.get("experiment") else r["arm"]


def groups(records: list[Record]) -> dict[tuple[str, str, str], list[Record]]:
    """Records per (task, src, tgt), each group in reading order."""
    by_unit: dict[tuple[str, str, str], list[Record]] = defaultdict(list)
    for r in sorted(records, key=sort_key):
        by_unit[(r.get("task") or "mt", r.get("src") or "?", r.get("tgt") or "?")].append(r)
    return dict(sorted(by_unit.items()))


def by_experiment(rows: list[Record]) -> dict[str, list[Record]]:
    """Rows per experiment of a sweep, each in the order given: arms are compared only within one."""
    out: dict[str, list[Record]] = defaultdict(list)
    for r in rows:
        out[r.get("experiment") or ""].append(r)
    return dict(out)


def reference_arm(rows: list[Record]) -> Record | None:
    """The arm an experiment's others are measured against: the arm named base, else any base arm (an outside
    model), else the first."""
    return (next((r for r in rows if r["arm"] == "base"), None)
            or next((r for r in rows if method(r) == "base"), None) or (rows[0] if rows else None))


def direction(src: str, tgt: str) -> str:
    names = [LANGUAGES[c].name if c in LANGUAGES else c for c in (src, tgt)]
    return " → ".join(names)


def distinct(records: list[Record], key: str) -> list[str]:
    return sorted({str(r[key]) for r in records if r.get(key)})


def quality(r: Record) -> float | None:
    return metric(r, QUALITY.get(r.get("task") or "mt", QUALITY["mt"])[0])


def is_extra_seed(r: Record) -> bool:
    """A copy of an arm trained with another seed (`seeds:`): its quality goes into the arm's mean ± sd over
    seeds; the arm's own row, tests and plots are the first seed's."""
    return r.get("family") not in (None, r["arm"])


def seed_spread(records: list[Record]) -> dict[tuple, tuple[float, float, int]]:
    """(experiment, family, task, src, tgt) -> (mean, sd, number of seeds) of the quality metric, for arms
    trained with more than one seed (sample sd, n - 1)."""
    values: dict[tuple, list[float]] = defaultdict(list)
    for r in records:
        if r.get("family") and (q := quality(r)) is not None:
            values[(r.get("experiment"), r["family"], r.get("task") or "mt", r.get("src"), r.get("tgt"))].append(q)
    out = {}
    for key, qs in values.items():
        if len(qs) > 1:
            mean = sum(qs) / len(qs)
            out[key] = (mean, (sum((q - mean) ** 2 for q in qs) / (len(qs) - 1)) ** 0.5, len(qs))
    return out
