"""Result records as the report reads them: loading and checking results.jsonl files (one run, or every
run of a sweep), and the small accessors every part of the report shares."""
from __future__ import annotations

import json
import re
from collections import defaultdict
from pathlib import Path
from typing import Any, Callable, Hashable, Iterable, TypeVar

from core.errors import UserError
from core.languages import LANGUAGES
from core.records import ResultRecord
from tasks import TASKS
from tasks.base import Quality

RESULTS = "results.jsonl"

Record = dict[str, Any]


# ---------------------------------------------------------------- loading

def load_records(directory: Path) -> list[Record]:
    """A run's results.jsonl, or those of every experiment one level down (a sweep)."""
    own = directory / RESULTS
    found = [own] if own.is_file() else sorted(directory.glob(f"*/{RESULTS}")) or [own]
    return [r for path in found for r in load_results(path)]


def load_dev_records(directory: Path) -> list[Record]:
    """The dev-split records beside a run's (its dev/ folder), or beside each experiment of a sweep: what the
    choices a test report shows were made on. None found: []."""
    own = directory / "dev" / RESULTS
    found = [own] if own.is_file() else sorted(directory.glob(f"*/dev/{RESULTS}"))
    return [r for path in found for r in load_results(path)]


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
                content = json.loads(line)
            except json.JSONDecodeError as e:
                raise UserError(f"{path}:{n}: {e}") from None
            records.append(ResultRecord.read(content, f"{path}:{n}").as_dict())
    if not records:
        raise UserError(f"{path}: no results (the file is empty)")
    return records


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
                   "train_setup_s", "train_peak_mem_mb", "train_mfu", "train_hw_flops")


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
    # Reading order: the zero-shot baseline, then arms that pay for training, then the arms that use a
    # trained or training-free model at inference (PreTTY, in-context examples, nudging).
    return {"base": 0, "pretty": 2, "icl": 2, "nudge": 2}.get(method_name, 1)


def spans_experiments(records: Iterable[Record]) -> bool:
    """Whether the records come from several experiments (a sweep): labels then name each arm's experiment.
    A report decides this once, over all its records, and passes it on as `many`."""
    return len({r.get("experiment") for r in records}) > 1


def sort_key(r: Record, many: bool = False) -> tuple:
    natural = [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", label(r, many))]  # k2 before k10
    return rank(method(r)), natural


def label(r: Record, many: bool = False) -> str:
    """The arm, prefixed by its experiment when a report spans several (`many`: a sweep)."""
    return f"{r['experiment']}: {r['arm']}" if many and r.get("experiment") else r["arm"]


T = TypeVar("T")
K = TypeVar("K", bound=Hashable)


def grouped(items: Iterable[T], key: Callable[[T], K]) -> dict[K, list[T]]:
    """Items per key, each list in the order given, the keys in order of first appearance."""
    out: dict[K, list[T]] = defaultdict(list)
    for item in items:
        out[key(item)].append(item)
    return dict(out)


def unit(r: Record) -> tuple[str, str, str]:
    """(task, src, tgt): a task's direction, or its set and language; one table and one plot panel each."""
    return r.get("task") or "mt", r.get("src") or "?", r.get("tgt") or "?"


def groups(records: list[Record], many: bool | None = None) -> dict[tuple[str, str, str], list[Record]]:
    """Records per unit, units sorted, each group in reading order. `many`: whether labels name experiments
    (they order the rows); None: whether these records span several."""
    many = spans_experiments(records) if many is None else many
    return dict(sorted(grouped(sorted(records, key=lambda r: sort_key(r, many)), unit).items()))


def by_experiment(rows: list[Record]) -> dict[str, list[Record]]:
    """Rows per experiment of a sweep, each in the order given: arms are compared only within one."""
    return grouped(rows, lambda r: r.get("experiment") or "")


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


def quality_of(task: str, rows: Iterable[Record] = ()) -> Quality:
    """The metric a task is judged by: its registered task's (tasks/), else the one its records name (a
    plugin's task whose plugin this process has not imported), else translation's (records older than
    tasks)."""
    if task in TASKS:
        return TASKS[task].quality
    named = next((r["quality"] for r in rows if isinstance(r.get("quality"), dict)), None)
    return Quality(**named) if named else TASKS["mt"].quality


def quality(r: Record) -> float | None:
    return metric(r, quality_of(r.get("task") or "mt", [r]).key)


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
            key = (r.get("experiment"), r["family"], r.get("task") or "mt", r.get("src"), r.get("tgt"))
            values[key].append(q)
    out = {}
    for key, qs in values.items():
        if len(qs) > 1:
            mean = sum(qs) / len(qs)
            out[key] = (mean, (sum((q - mean) ** 2 for q in qs) / (len(qs) - 1)) ** 0.5, len(qs))
    return out
