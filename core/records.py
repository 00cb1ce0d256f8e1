"""The records the stages write and read, typed: a checkpoint's train.json (`TrainRecord`) and a result record
(`ResultRecord`). The writer builds the model and the readers validate into it, so a field is spelled once and
a damaged or hand-edited file fails where it is read, naming itself. Records are immutable once built.

SCHEMA_VERSION counts the layout of these files; files written before it existed have none (0) and still load:
every field added since is optional."""
from __future__ import annotations

from typing import Any, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, StrictFloat, StrictInt, ValidationError, field_validator

from core.errors import UserError

SCHEMA_VERSION = 1
Costs = dict[str, Optional[float]]


class Record(BaseModel):
    # "allow": a newer writer's extra field, or a plugin task's, is kept and passed on, never refused
    model_config = ConfigDict(frozen=True, extra="allow")
    schema_version: int = 0
    protocol: int = Field(1, description="the results protocol (core/provenance.py) it was computed under")
    versions: dict[str, Optional[str]] = {}
    dtype: Optional[str] = None
    attention: Optional[str] = None   # the attention implementation used (sdpa, eager, flash_attention_2)

    @classmethod
    def read(cls, content: Any, where: str) -> "Record":
        """Validated content of a file, or a UserError naming it (`where`: file or file:line)."""
        try:
            return cls.model_validate(content)
        except ValidationError as e:
            err = e.errors()[0]
            field = ".".join(str(p) for p in err["loc"]) or "(top level)"
            raise UserError(f"{where}: {field}: {err['msg']}") from None


class TrainRecord(Record):
    """checkpoints/<job>/train.json: what trained the checkpoint, from what, on what, at what cost."""
    arm: Optional[str] = None             # the job's name: its checkpoint directory (checked on read)
    method: str
    model_dir: str
    base_model: Optional[str] = None      # the weights the job started from
    weights_sha256: str
    files_sha256: Optional[dict[str, str]] = None
    seed: Optional[int] = None
    data_sha256: Optional[str] = None
    start_weights_sha256: Optional[str] = None
    init_from: Optional[str] = None
    probe_of: Optional[str] = None
    config_hash: Optional[str] = None
    check: dict[str, Any] = {}
    cost: Costs = {}                      # the weights' whole training: a two-stage arm's both stages
    stage_cost: Costs = {}                # this job's own
    tokens_by_lang: dict[str, int] = {}


Number = Optional[Union[StrictInt, StrictFloat]]   # a metric or cost: never a bool or a numeric string


class ResultRecord(Record):
    """results/<arm>.<task>.<unit>.json and a line of results.jsonl: one arm on one unit of one task. Every
    field but `arm` is optional, so that records of every earlier version still load for the report."""
    arm: str = Field(min_length=1)
    experiment: Optional[str] = None
    method: Optional[str] = None
    task: Optional[str] = None
    src: Optional[str] = None
    tgt: Optional[str] = None
    family: Optional[str] = None
    seed: Optional[int] = None
    budget: Optional[int] = None
    split: Optional[str] = None
    data_sha256: Optional[str] = None
    train_data_sha256: Optional[str] = None
    metrics: Optional[dict[str, Number]] = None
    quality: Optional[dict[str, Any]] = None
    signatures: Optional[dict[str, Any]] = None
    n_items: Optional[int] = None
    per_item: Optional[dict[str, Any]] = None
    samples: Optional[list[dict[str, Any]]] = None
    prior: Optional[dict[str, Any]] = None
    weights: Optional[dict[str, Any]] = None
    config_hash: Optional[str] = None
    git_rev: Optional[str] = None
    probe: Optional[dict[str, Any]] = None
    icl: Optional[dict[str, Any]] = None       # demonstrations: shots asked and used, selection, bound
    nudge: Optional[dict[str, Any]] = None     # tokens the aligned model supplied, and where
    decoding: Optional[dict[str, Any]] = None  # beam, repetition penalty, n-gram block (unset: greedy)
    cost: Optional[dict[str, Number]] = None
    # batch_size (configured), batch_size_used (the smallest a batch halved on running out of memory ran at),
    # halved (how many halvings), ranks (evaluation ranks: cost.eval_wall_s is wall seconds x ranks)
    eval_batching: Optional[dict[str, int]] = None
    train_tokens_by_lang: Optional[dict[str, int]] = None

    @field_validator("per_item")
    @classmethod
    def _paired(cls, v: Optional[dict[str, Any]]) -> Optional[dict[str, Any]]:
        outputs, references = (v or {}).get("output"), (v or {}).get("reference")
        if (outputs is None) != (references is None) or (outputs is not None and not (
                isinstance(outputs, list) and isinstance(references, list)
                and len(outputs) == len(references))):
            raise ValueError("needs 'output' and 'reference' as lists of the same length, or neither")
        return v

    def as_dict(self) -> dict[str, Any]:
        """The fields the file had (and a writer set), as JSON values: what the report reads."""
        return self.model_dump(mode="json", exclude_unset=True)
