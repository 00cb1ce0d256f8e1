"""A run directory, the contract between the stages: every path in it, what makes a checkpoint complete, and
the one reader of a checkpoint's train.json (verified against its weights). No stage spells a path itself.

    <output_dir>/<name>/
      config.yaml, config.hash        the resolved config (prepare)
      data/train.jsonl dev.jsonl test.jsonl manifest.json pretrain-<arm>.jsonl fictional-<lang>.jsonl
      checkpoints/<job>/model/ trainer/ log.jsonl train.json   (train.json last: complete)
      results/<arm>.<task>.<unit>.json, results.jsonl          (eval; dev/ holds the dev split's own)
      report.md .html .csv *.png                                (report)
      .lock                                                     (one writer at a time)
"""
from __future__ import annotations

from pathlib import Path

from core import checkpoints, lock
from core.errors import UserError
from core.provenance import PROTOCOL, is_current, protocol_of
from core.records import TrainRecord


class RunDir:
    def __init__(self, root: str | Path, split: str = "test"):
        self.root, self.split = Path(root), split

    @classmethod
    def of(cls, cfg, split: str = "test") -> "RunDir":
        return cls(Path(cfg.output_dir).resolve() / cfg.name, split)

    def __fspath__(self) -> str:
        return str(self.root)

    # ---------------------------------------------------------------- config and data (prepare)
    @property
    def config(self) -> Path:
        return self.root / "config.yaml"

    @property
    def config_hash(self) -> Path:
        return self.root / "config.hash"

    def data(self, name: str) -> Path:
        """A prepared file: `train.jsonl`, `test.jsonl`, a job's training file…"""
        return self.root / "data" / name

    def rows(self, split: str) -> Path:
        return self.data(f"{split}.jsonl")

    @property
    def manifest(self) -> Path:
        return self.data("manifest.json")

    def pretraining(self, arm: str) -> Path:
        return self.data(f"pretrain-{arm}.jsonl")

    # ---------------------------------------------------------------- checkpoints (train)
    def checkpoint(self, job: str) -> Path:
        return self.root / "checkpoints" / job

    def record(self, job: str) -> Path:
        """train.json: written last, so its presence marks a complete checkpoint."""
        return self.checkpoint(job) / "train.json"

    def trainer(self, job: str) -> Path:
        """The trainer's resumable checkpoints (checkpoint-N/)."""
        return self.checkpoint(job) / "trainer"

    def complete(self, job: str) -> bool:
        return self.record(job).is_file()

    def trained(self, job: str, needed_by: str = "", verify: bool = True) -> TrainRecord:
        """A complete checkpoint's train.json, of this code's protocol, its weights verified against the
        hashes it records (`verify=False`: a training rank, whose launcher verified them before starting it);
        a UserError naming the file otherwise (before any compute)."""
        path = self.record(job)
        if not path.is_file():
            raise UserError(f"{path}: {needed_by + ': ' if needed_by else ''}{job!r} has no complete "
                            "checkpoint; run its training first")
        rec = checkpoints.read_record(path)
        if not is_current(rec):
            raise UserError(f"{path}: checkpoint written under protocol {protocol_of(rec)}, this code "
                            f"computes protocol {PROTOCOL}; run the train stage (it trains the arm again)")
        if verify:
            checkpoints.verify(rec, path)
        return rec

    # ---------------------------------------------------------------- results (eval) and report
    @property
    def out(self) -> Path:
        """Where this split's results and report go: the run directory (test) or its dev/ folder."""
        return self.root if self.split == "test" else self.root / self.split

    def result(self, arm: str, task: str, unit: str) -> Path:
        return self.out / "results" / f"{arm}.{task}.{unit}.json"

    @property
    def results(self) -> Path:
        return self.out / "results.jsonl"

    def report(self, suffix: str) -> Path:
        return self.out / f"report.{suffix}"

    # ---------------------------------------------------------------- one writer
    def lock(self) -> None:
        lock.acquire(self.root)

    def unlock(self) -> None:
        lock.release(self.root)
