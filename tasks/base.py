"""What a task is, and the registry every stage reads tasks from (as lm-eval-harness registers its tasks).

A task owns, in one module: its config model (the block under `tasks.<name>:`), its units (directions,
languages or sets: each is one result record per arm), how it builds its train/dev/test rows, how a model is
called on its items, how the outputs are scored, its quality metric and its report columns. `prepare`, the
evaluator and the report iterate over the registry; adding a task is one file (see CONTRIBUTING.md).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar, Optional

from core.decoding import Generation, generate
from core.schema import Strict

TASKS: dict[str, type["Task"]] = {}
# how the report resamples a task's items for intervals and paired tests (eval/report_stats.py)
RESAMPLES = ("chrf", "tagging", "exact", "contains")


def register(cls: type["Task"]) -> type["Task"]:
    """Class decorator: the task becomes `tasks.<cls.name>` in every config validated after this import. What
    it declares is checked here, at import, not after an evaluation."""
    where = f"task {getattr(cls, 'name', cls.__name__)!r} ({cls.__module__})"
    if not re.fullmatch(r"[a-z][a-z0-9_]{0,40}", getattr(cls, "name", "")):
        raise ValueError(f"{where}: name must be lower-case letters, digits and _ (a config key)")
    if hasattr(Strict, cls.name):   # `tasks.copy` would shadow pydantic's BaseModel.copy
        raise ValueError(f"{where}: name {cls.name!r} is taken by the config model's own attributes")
    if not (isinstance(getattr(cls, "spec", None), type) and issubclass(cls.spec, Strict)):
        raise ValueError(f"{where}: spec must be its config model, a core.schema.Strict subclass")
    if not isinstance(getattr(cls, "quality", None), Quality):
        raise ValueError(f"{where}: quality must be a tasks.base.Quality")
    if cls.resample not in RESAMPLES:
        raise ValueError(f"{where}: resample {cls.resample!r} is not one of {', '.join(RESAMPLES)}")
    if cls.name in TASKS and TASKS[cls.name] is not cls:
        raise ValueError(f"task {cls.name!r} is registered twice "
                         f"({TASKS[cls.name].__module__}, {cls.__module__})")
    TASKS[cls.name] = cls
    return cls


@dataclass(frozen=True)
class Quality:
    """The metric a task is judged by in every table, plot and test: its key in `metrics`, label, full
    scale."""
    key: str
    label: str
    scale: float


@dataclass(frozen=True)
class Column:
    """A quality column of the task's report table: a metric (or `ci`: the quality's 95% interval; or, with
    `field`, a record field) and how to print it: a format spec, `percent` (a share shown ×100), `gate`
    (met / NOT met) or a function of the value."""
    header: str
    metric: str
    format: str | Callable[[Any], str]
    field: bool = False


@dataclass
class Prepared:
    """What a task adds to the run directory: rows per split, manifest entries, and extra training files
    (name -> rows) for the jobs the task itself trains (e.g. conductivity probes)."""
    rows: dict[str, list[dict]] = field(default_factory=lambda: {"train": [], "dev": [], "test": []})
    manifest: dict[str, dict] = field(default_factory=dict)
    files: dict[str, list[dict]] = field(default_factory=dict)


@dataclass(frozen=True)
class Scored:
    """A task's scores of one unit: `items` and `outputs` are what the record keeps per item (and resamples
    for intervals); `extra` is added to the record as it is (e.g. a probe's subsets)."""
    metrics: dict[str, float]
    per_item: dict[str, list]
    items: list[dict]
    outputs: list[Generation]
    signatures: dict[str, str] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Context:
    """What building rows needs: the experiment, the data directory (None: not set) and the directory the
    config file is in (relative paths of data sources)."""
    cfg: Any
    data_dir: Optional[Path]
    base_dir: Path


class Task:
    """Subclass, set the class attributes, implement the methods, decorate with `@register`."""
    name: ClassVar[str]
    spec: ClassVar[type[Strict]]          # the config model of `tasks.<name>`
    quality: ClassVar[Quality]
    columns: ClassVar[tuple[Column, ...]] = ()
    # a generating task's answer is decoded, so a PreTTY prior can start it; a scoring task ranks options
    generates: ClassVar[bool] = True
    # how the report resamples items for intervals: chrf (sacreBLEU's paired bootstrap), tagging (words),
    # exact (output == reference), contains (reference in output)
    resample: ClassVar[str] = "exact"
    # prepare writes rows, and eval runs tasks, in this order: the built-in tasks' order before the registry
    order: ClassVar[int] = 100

    @classmethod
    def report_note(cls, rows: list[dict]) -> str:
        """What the report says under each of this task's tables (how its metrics are defined)."""
        return ""

    def __init__(self, spec: Strict, cfg: Any):
        self.spec, self.cfg = spec, cfg

    # ---------------------------------------------------------------- config
    def check(self, cfg) -> None:
        """Checks across the experiment (e.g. arms this task names); a ValueError starting with the field's
        dotted path is reported at that field's line."""

    def jobs(self) -> list:
        """Training jobs this task needs for its measurement (core.jobs.Job), after the arms' own."""
        return []

    # ---------------------------------------------------------------- data
    def units(self) -> list[str]:
        """Each unit is "<src>-<tgt>" (a direction, or a set and a language): one record per arm and unit."""
        raise NotImplementedError

    def prepare(self, ctx: Context) -> Prepared:
        raise NotImplementedError

    def check_lengths(self, tok, prepared: Prepared) -> None:
        """Files this task trains on are checked against its own length limit (the labelled budget's rows are
        checked against the training arms' by prepare)."""

    def held_out_sources(self) -> list:
        """Parallel sources whose held-out (test, dev) books pretraining text must leave out."""
        return []

    # ---------------------------------------------------------------- evaluation
    def skip(self, arm) -> Optional[str]:
        """Why this arm has no record for this task (None: it has). A message is printed; "" skips quietly."""
        return None

    def weights_job(self, arm, unit: str) -> Optional[str]:
        """The training job whose weights answer this unit for `arm`, instead of the arm's own (None)."""
        return None

    def budget_rows(self, train: list[dict], unit: str) -> list[dict]:
        """The budget's rows a prior for this unit is built from (a frequent or dictionary prior)."""
        return [r for r in train if r["task"] == self.name and r["direction"] == unit]

    def prior_options(self, items: list[dict]) -> dict:
        """Extra keyword arguments for a prior source (e.g. the units k counts)."""
        return {}

    def few_shot_prompt(self, item: dict, shots: list[dict]) -> str:
        """The prompt of `item` after in-context demonstrations: the task's instruction (the prompt's first
        line) once, then each shot's rest of prompt and its answer as trained on, then the item's rest of
        prompt. A task whose prompt is not "instruction, newline, item" overrides this."""
        instruction, _, body = item["prompt"].partition("\n")
        blocks = [s["prompt"].partition("\n")[2] + s["completion"] for s in shots]
        return "\n".join([instruction, *blocks, body])

    def max_new_tokens(self) -> int:
        return self.cfg.eval.max_new_tokens

    def loop_language(self, unit: str) -> str | None:
        """The language an output's loops are counted in (eval/degeneration.py: characters for zh/ja, else
        words); "" counts words; None: answers that repeat by design, only hitting the token limit counts."""
        return ""

    def run(self, model, tok, items: list[dict], priors: Optional[list[list[int]]], desc: str,
            prompts: Optional[list[str]] = None) -> list[Generation]:
        """The model's answers to `items`, in order (a generating task: decoded, continuing each prior);
        `prompts`: other prompts than the items' own (with demonstrations)."""
        return generate(model, tok, prompts or [r["prompt"] for r in items], priors,
                        max_new_tokens=self.max_new_tokens(), batch_size=self.cfg.eval.batch_size,
                        desc=desc, options=self.cfg.eval.decoding())

    def score(self, items: list[dict], outputs: list[Generation], unit: str) -> Scored:
        raise NotImplementedError

    def record_extra(self, arm, unit: str, job_record: Any, scored: Scored) -> dict:
        """Fields this task adds to a record (e.g. the probe's training cost); `job_record`: the train.json of
        `weights_job`'s checkpoint, when the task named one."""
        return {}


def dev_size(cfg, available: int) -> int:
    """Dev items per unit: data.dev_size (default: test_size), at most what the source has."""
    return min(cfg.data.dev_size or cfg.data.test_size, available)


def active(cfg) -> list[Task]:
    """The tasks a config names, in registry order."""
    return [TASKS[name](getattr(cfg.tasks, name), cfg) for name in ordered()
            if getattr(cfg.tasks, name, None)]


def ordered() -> list[str]:
    return sorted(TASKS, key=lambda n: (TASKS[n].order, list(TASKS).index(n)))
