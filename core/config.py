"""Experiment config: a YAML file validated by pydantic before any compute, with key=value overrides.

Errors name the file, the line and the field (``configs/x.yaml:12: arms.2.method: ...``), so a typo costs
seconds, not a training run.
"""
from __future__ import annotations

import difflib
import hashlib
import importlib
import json
import re
from collections.abc import Hashable
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal, Optional

import yaml
from pydantic import Field, ValidationError, create_model, model_validator

import tasks as task_registry
from core.arms import (ARMS, LoraArm, NudgeArm, PretrainArm, PrettyArm, SftArm, arm_union, full_weights,
                       trained)
from core.errors import PluginMissing, UserError
from core.jobs import Job, arm_job
from core.schema import Name, Seed, Strict, check_name, new_field, without_new_defaults

REPO = Path(__file__).resolve().parents[1]


class ModelSpec(Strict):
    name: str = Field(description="'gemma-3-270m' (packaged), 'tiny-llama' (built in-process), a local "
                      "directory or a hub id")
    dtype: Literal["float32", "bfloat16", "float16", "auto"] = "auto"
    trust_remote_code: bool = False
    attention: Literal["auto", "eager", "sdpa", "flash_attention_2"] = new_field(
        "auto", description="the attention kernel, in training and evaluation: auto (transformers' default: "
        "sdpa where the model supports it), eager, sdpa or flash_attention_2 (needs the flash-attn package "
        "and a CUDA GPU); recorded as used in every train.json and result record")


class DataSpec(Strict):
    dir: Optional[str] = Field(None, description="data directory (UD, CLiKA); default: env YARN_DATA_DIR")
    # strict: `budget: true` would otherwise be read as 1 example
    budget: int = Field(gt=0, strict=True, description="labelled training examples per task direction, "
                        "shared by every arm")
    test_size: int = Field(gt=0, strict=True, description="test items per task direction")
    dev_size: Optional[int] = Field(
        None, gt=0, description="dev items per task direction (held out from training and test, for every "
        "choice made before the test); default: test_size")
    token_budget: Optional[int] = Field(
        None, gt=1, description="training tokens of every pretraining arm (cpt, mixed); default: the "
        "tokens of the labelled budget, what one SFT epoch sees")


def _check_units(task) -> None:
    """A task's units name its records and result files: each once, each "<src>-<tgt>"."""
    units = task.units()
    for unit in units:
        src, dash, tgt = unit.partition("-")
        if not (src and dash and tgt) or "-" in tgt or not check_name(unit):
            raise ValueError(f"tasks.{task.name}: unit {unit!r} is not '<src>-<tgt>' (e.g. en-de)")
    repeated = sorted({u for u in units if units.count(u) > 1})
    if repeated:
        raise ValueError(f"tasks.{task.name}: {repeated} repeated (each unit is evaluated once)")


class TasksBase(Strict):
    """`tasks:`: one optional block per registered task (tasks/), built by `schema()`."""

    @model_validator(mode="after")
    def _some(self) -> "TasksBase":
        if not any(getattr(self, name) for name in type(self).model_fields):
            raise ValueError(f"name at least one task ({', '.join(type(self).model_fields)})")
        return self


class DeepSpeedSpec(Strict):
    config: str = "configs/deepspeed/zero2.json"
    num_gpus: int = Field(1, gt=0, description="ranks per node; CPU ranks when no GPU is present")
    master_port: Optional[int] = Field(None, ge=1, le=65535,
                                       description="default: a free port, so runs side by side don't collide")
    hostfile: Optional[str] = Field(
        None, description="DeepSpeed hostfile for multi-node runs (e.g. written by Slurm)")
    nodes: Optional[int] = Field(
        None, ge=1, description="the hostfile's hosts, written by prepare into the run's config.yaml: the "
        "run's hash counts them when that hostfile (Slurm writes one per job) is gone; unset: read from the "
        "hostfile")

    @model_validator(mode="after")
    def _nodes_of_a_hostfile(self) -> "DeepSpeedSpec":
        if self.nodes is not None and not self.hostfile:
            raise ValueError("nodes counts the hosts of deepspeed.hostfile, and no hostfile is set")
        return self

    def path(self) -> Path:
        """Relative DeepSpeed config paths are relative to the repository root."""
        p = Path(self.config)
        return p if p.is_absolute() else REPO / p

    def hostfile_path(self) -> Path | None:
        """The launcher runs in the repository root: a relative hostfile is read from there."""
        return REPO / self.hostfile if self.hostfile else None

    def hosts(self) -> dict[str, int]:
        """host -> slots of the hostfile (DeepSpeed's format: `worker-1 slots=8` a line, # comments); empty
        without one (one node). UserError naming the field when it is missing or has no host line."""
        path = self.hostfile_path()
        if path is None:
            return {}
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            raise UserError(f"deepspeed.hostfile: {path} not found") from None
        except (OSError, UnicodeDecodeError) as e:
            raise UserError(f"deepspeed.hostfile: {path}: unreadable ({e})") from None
        found = {}
        for n, line in enumerate(lines, 1):
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            m = re.match(r"(\S+)\s+slots=(\d+)", line)   # as DeepSpeed's runner reads it
            if m is None or int(m[2]) == 0 or m[1] in found:
                raise UserError(f"deepspeed.hostfile: {path}:{n}: expected 'HOST slots=N' (N > 0, each host "
                                f"once), got {line!r}")
            found[m[1]] = int(m[2])
        if not found:
            raise UserError(f"deepspeed.hostfile: {path}: no 'HOST slots=N' line")
        return found

    def node_count(self) -> int:
        """Hosts the ranks run on: the hostfile's (checked against `nodes` when both are there), else the
        recorded `nodes` of a run whose hostfile is gone; 1 without a hostfile."""
        if not self.hostfile:
            return 1
        if self.nodes is not None and not self.hostfile_path().is_file():
            return self.nodes
        listed = len(self.hosts())
        if self.nodes is not None and self.nodes != listed:
            raise UserError(f"deepspeed.hostfile: {self.hostfile_path()} lists {listed} hosts, but the run "
                            f"was prepared for deepspeed.nodes={self.nodes}")
        return listed

    def world_size(self) -> int:
        """Training (and evaluation) ranks: num_gpus on each node. With a hostfile, DeepSpeed's runner (0.19)
        starts --num_gpus ranks on every one of its hosts, whatever their slots."""
        return self.node_count() * self.num_gpus


class CometSpec(Strict):
    """COMET beside BLEU/chrF, scored in its own environment (./launch.sh comet-setup; eval/comet.py)."""
    model: str = Field(min_length=1, description="a hub id (e.g. Unbabel/wmt22-comet-da) or a local COMET "
                       "model: its directory or checkpoints/model.ckpt")
    batch_size: int = Field(16, gt=0)


class EvalSpec(Strict):
    batch_size: int = Field(8, gt=0)
    max_new_tokens: int = Field(96, gt=0, description="translation")
    pos_max_new_tokens: int = Field(160, gt=0, description="POS tagging: about two tokens per tag")
    samples: int = Field(5, ge=0, description="sample outputs kept in each result record")
    # Decoding, the same for every arm and recorded in every record; unset: greedy. Choose them on dev
    # (`--split dev`), not on the test.
    num_beams: Optional[int] = Field(None, ge=1, description="beam search width (ALMA decodes with 5)")
    repetition_penalty: Optional[float] = Field(None, gt=0, description="e.g. 1.1 (1: none)")
    no_repeat_ngram_size: Optional[int] = Field(None, ge=1, description="no n-gram of this size twice")
    # unset: no COMET (and the hash of configs without it unchanged); skipped with a line when unreachable
    comet: Optional[CometSpec] = Field(None, description="score translations with COMET too, e.g. "
                                       "{model: Unbabel/wmt22-comet-da}")
    in_process: bool = Field(False, description="evaluate in the run's own process on one device instead of "
                             "on the training's ranks: the same outputs (the batches are one rank's either "
                             "way), no launcher start-up (a small model, CPU ranks sharing the cores)")

    def decoding(self) -> dict:
        """The options set, as `model.generate` takes them (empty: greedy)."""
        return {k: v for k in ("num_beams", "repetition_penalty", "no_repeat_ngram_size")
                if (v := getattr(self, k)) is not None}


class WandbSpec(Strict):
    project: str = "yarn"
    entity: Optional[str] = None
    mode: Literal["auto", "online", "offline", "disabled"] = Field(
        "auto", description="auto: online when an API key is configured, else offline; never prompts")
    group: Optional[str] = Field(
        None, description="W&B group; default: the experiment name (a sweep sets its own)")


class ReportSpec(Strict):
    usd_per_device_hour: Optional[float] = Field(
        None, gt=0, description="price of one device-hour; the report then adds each arm's training cost "
        "in USD")
    peak_tflops: Optional[float] = Field(
        None, gt=0, description="the training device's peak TFLOP/s for MFU; default: "
        "core.ledger.PEAK_TFLOPS by GPU name")


class ExperimentConfig(Strict):
    """The experiment. `tasks` and `arms` are typed by the registries (`schema()` builds the model that
    validates them); `plugins` are imported before that, so that their tasks, priors and arms register."""
    name: Name
    plugins: Optional[list[str]] = Field(
        None, description="modules imported before validation (in every process, DeepSpeed ranks included) "
        "that register tasks, prior sources or arms, e.g. [my_pkg.my_task]")
    seed: Seed = 0
    model: ModelSpec
    tasks: Any
    data: DataSpec
    arms: list[Any] = Field(min_length=1)
    deepspeed: DeepSpeedSpec = DeepSpeedSpec()
    eval: EvalSpec = EvalSpec()
    wandb: WandbSpec = WandbSpec()
    report: ReportSpec = ReportSpec()
    output_dir: str = "runs"
    seeds: Optional[list[Seed]] = Field(
        None, min_length=1, description="train every training arm once per seed (and evaluate PreTTY arms "
        "once per seed of their prior's arm); the report shows mean ± sd over seeds. "
        "Default: one training run, seed `seed`")

    @model_validator(mode="after")
    def _token_budget(self) -> "ExperimentConfig":
        """Pretraining arms get the tokens SFT trains on; with several SFT epochs settings that is
        ambiguous."""
        if self.data.token_budget is None and any(isinstance(a, PretrainArm) for a in self.arms):
            epochs = {a.epochs for a in self.arms if isinstance(a, (SftArm, LoraArm))}
            if len(epochs) > 1 or any(e != int(e) for e in epochs):
                raise ValueError(f"data.token_budget: the sft/lora arms train for {sorted(epochs)} epochs, "
                                 "so the pretraining arms' token budget is ambiguous; set data.token_budget")
        if self.seeds is not None and len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"seeds: {self.seeds} repeats a seed")
        return self

    @model_validator(mode="after")
    def _arms(self) -> "ExperimentConfig":
        # Errors start with the field's path: load_config then names it and its line (see _located)
        names = [a.name for a in self.arms]
        for i, name in enumerate(names):
            if name in names[:i]:
                raise ValueError(f"arms.{i}.name: repeated arm name {name!r} (arms.{names.index(name)} has "
                                 "it); arm names must be unique")
        by_name = {a.name: a for a in self.arms}
        for i, a in enumerate(self.arms):
            if getattr(a, "from_arm", None) is None:
                continue
            src = by_name.get(a.from_arm)
            # a PreTTY prior names its arm's method (else the record would call a LoRA prior "sft"); nudging
            # takes an sft or lora model's tokens; icl prompts any trained model
            want = ((a.source.arm_method,) if isinstance(a, PrettyArm) else ("sft", "lora")
                    if isinstance(a, NudgeArm) else tuple(m for m in ARMS if trained(m)))
            if src is None or src.method not in want:
                what = f"prior {a.prior}" if isinstance(a, PrettyArm) else f"method {a.method}"
                raise ValueError(f"arms.{i}.from_arm: {what} needs from_arm to name a {' or '.join(want)} "
                                 f"arm of this experiment; {a.from_arm!r} is "
                                 + (f"a {src.method} arm" if src else "not an arm of it"))
        nudged = next((i for i, a in enumerate(self.arms) if isinstance(a, NudgeArm)), None)
        if nudged is not None and self.eval.decoding():
            # nudging is its own greedy loop: other options would be recorded but not applied
            raise ValueError(f"arms.{nudged}.method: nudge decodes greedily, but eval sets "
                             f"{self.eval.decoding()}; evaluate nudge arms in an experiment with greedy "
                             "decoding")
        for task in self.tasks_used():
            task.check(self)
            _check_units(task)
        for i, a in enumerate(self.arms):
            start = getattr(a, "init_from", None)
            if start is not None:
                earlier = {b.name: b for b in self.arms[:i]}
                if start not in earlier or not full_weights(earlier[start].method):
                    raise ValueError(f"arms.{i}.init_from: {start!r} must name an earlier sft, cpt or mixed "
                                     "arm")
        return self

    @model_validator(mode="after")
    def _seed_names(self) -> "ExperimentConfig":
        """A seed copy's name (`<arm>-seed<s>`) must not be another arm's: they would share checkpoints and
        results."""
        names = [a.name for a in self.arm_runs()]
        for name in names:
            check_name(name, "seeds: seed copy ")
        clash = sorted({n for n in names if names.count(n) > 1})
        if clash:
            raise ValueError(f"seeds: the seed copies' names clash with other arms: {clash}; "
                             "rename those arms")
        return self

    @model_validator(mode="after")
    def _job_names(self) -> "ExperimentConfig":
        """Each training job owns checkpoints/<name>/: an arm named like a task's job would take its place."""
        names = [j.name for j in self.jobs()]
        clash = sorted({n for n in names if names.count(n) > 1})
        if clash:
            raise ValueError(f"arms: {clash} name both an arm and a task's training job (conductivity probes "
                             "are cd-<lang>-<arm>); rename the arm")
        return self

    def sft_epochs(self) -> int:
        """Epochs of the labelled budget's training arms (1 without any): what the derived token budget
        covers."""
        return int(next((a.epochs for a in self.arms if a.method in ("sft", "lora")), 1))

    def arm_runs(self) -> list:
        """Every arm as it is trained and evaluated: with `seeds`, each arm whose weights come from training
        (a training arm, a PreTTY arm with a model prior from one) once per seed. The first seed keeps the
        arm's name, the others are named `<arm>-seed<s>`, and their from_arm / init_from follow the same
        seed."""
        if not self.seeds:
            return list(self.arms)
        by_name = {a.name: a for a in self.arms}

        def seeded(a) -> bool:
            if trained(a.method):
                return True
            # an arm built on a training arm's model (a prior, nudging, prompting it) follows its seeds
            return getattr(a, "from_arm", None) is not None and seeded(by_name[a.from_arm])

        def renamed(name: str | None, seed: int) -> str | None:
            return name if name is None or seed == self.seeds[0] else f"{name}-seed{seed}"

        out = []
        for a in self.arms:
            if not seeded(a):
                out.append(a)
                continue
            for seed in self.seeds:
                update = {"name": renamed(a.name, seed)}
                if trained(a.method):
                    update |= {"seed": seed, "init_from": renamed(a.init_from, seed)}
                else:
                    update["from_arm"] = renamed(a.from_arm, seed)
                out.append(a.model_copy(update=update))
        return out

    def family(self, arm_name: str) -> str:
        """The configured arm an arm run copies (itself without `seeds`): its data files are the family's."""
        for a in self.arms:
            if arm_name == a.name or any(arm_name == f"{a.name}-seed{s}" for s in self.seeds or ()):
                return a.name
        raise UserError(f"no arm named {arm_name!r}")

    def arm(self, name: str):
        for a in self.arm_runs():
            if a.name == name:
                return a
        raise UserError(f"no arm named {name!r} (arms: {', '.join(a.name for a in self.arm_runs())})")

    def trained_arms(self) -> list:
        return [a for a in self.arm_runs() if trained(a.method)]

    def tasks_used(self) -> list:
        """The tasks this experiment names (tasks/ registry objects), in registry order."""
        return task_registry.active(self)

    def units(self) -> list[tuple[str, str]]:
        """Every (task, unit) an arm is evaluated on."""
        return [(task.name, unit) for task in self.tasks_used() for unit in task.units()]

    def jobs(self) -> list[Job]:
        """Every training job, in the order they run: the training arms (init_from's first stage before it),
        then the jobs of tasks' measurements."""
        return ([arm_job(self, a) for a in self.trained_arms()]
                + [j for t in self.tasks_used() for j in t.jobs()])

    def job(self, name: str) -> Job:
        for j in self.jobs():
            if j.name == name:
                return j
        raise UserError(f"no training job named {name!r} (jobs: {', '.join(j.name for j in self.jobs())})")

    def hash(self) -> str:
        """Identity of an experiment: everything that changes results (not where they go, how they are logged
        or priced).
        Unset (None) fields are left out, and so are new fields at their default (core.schema.new_field), so a
        new field in the schema keeps existing runs' hashes. The rendezvous port and the hostfile's path say
        where ranks meet, not what they compute (nor does evaluating in process), but its number of hosts
        multiplies the ranks (so the optimizer rounds a budget makes): hashed when over one, which keeps one
        node's hash."""
        d = without_new_defaults(self, self.model_dump(mode="json", exclude_none=True, exclude={
            "output_dir": True, "wandb": True, "report": True,
            "deepspeed": {"master_port", "hostfile", "nodes"}, "eval": {"in_process"}}))
        if (nodes := self.deepspeed.node_count()) > 1:
            d["deepspeed"]["nodes"] = nodes
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]


def _set_path(tree: dict, dotted: str, value) -> None:
    node = tree
    keys = dotted.split(".")
    for i, key in enumerate(keys):
        if isinstance(node, list):
            key = _index(node, key, dotted)
        elif not isinstance(node, dict):
            raise UserError(f"override {dotted!r}: {'.'.join(keys[:i])} is not a mapping")
        if i == len(keys) - 1:
            node[key] = value
        else:
            node = node[key] if isinstance(node, list) else node.setdefault(key, {})


def _index(node: list, key: str, dotted: str) -> int:
    """A list item by position, or (a list of named items: arms) by name: `arms.sft.epochs` keeps meaning the
    sft arm when arms are reordered, as `arms.1.epochs` does not. An arm named without `name:` is found by its
    default name (`sft`, `cpt`, a PreTTY arm's pretty-<prior>-k<k>)."""
    if key.isdigit() and int(key) < len(node):
        return int(key)
    names = [_item_name(item) for item in node]
    if key in names:
        return names.index(key)
    known = ", ".join(n for n in names if n) or "none"
    raise UserError(f"override {dotted!r}: {key!r} is neither an index of the {len(node)}-item list nor a "
                    f"name in it (names: {known})")


def _item_name(item: Any) -> str | None:
    if not isinstance(item, dict):
        return None
    if isinstance(item.get("name"), str):
        return item["name"]
    method = item.get("method")
    if method == "pretty":
        return f"pretty-{item.get('prior')}-k{item.get('k')}"
    return method if isinstance(method, str) else None


class UniqueKeyLoader(yaml.SafeLoader):
    """YAML whose mappings may not repeat a key: plain YAML keeps the last value, silently dropping others."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":   # `<<: *base` then overriding a key is its point
                continue
            key = self.construct_object(key_node, deep=True)
            if not isinstance(key, Hashable):   # the base class refuses it, with its own message
                continue
            if key in seen:
                raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}",
                                                        key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep)


def _yaml_problem(e: yaml.YAMLError) -> str:
    return str(getattr(e, "problem", None) or e)


def read_yaml(path: Path) -> Any:
    """A YAML file's content; UserError naming the file (and line) when it is not UTF-8 or not valid YAML."""
    try:
        return yaml.load(path.read_text(encoding="utf-8"), Loader=UniqueKeyLoader)
    except UnicodeDecodeError as e:
        raise UserError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise UserError(f"{where}: invalid YAML ({_yaml_problem(e)})") from None


def apply_overrides(tree: dict, overrides: list[str]) -> dict:
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise UserError(f"override {item!r} must look like key=value (e.g. data.budget=64)")
        try:
            value = yaml.load(raw, Loader=UniqueKeyLoader)
        except yaml.YAMLError as e:
            raise UserError(f"override {item!r}: the value is not valid YAML ({_yaml_problem(e)})") from None
        _set_path(tree, key.strip(), value)
    return tree


def line_of(path: Path, loc: tuple) -> Optional[int]:
    """Line in the YAML file of the deepest existing node on `loc`, for error messages."""
    try:
        node = yaml.compose(path.read_text(encoding="utf-8"))
    except yaml.YAMLError:
        return None
    line = None
    for key in loc:
        if isinstance(node, yaml.MappingNode):
            match = [(k, v) for k, v in node.value if k.value == str(key)]
            if not match:
                break
            line, node = match[0][0].start_mark.line + 1, match[0][1]
        elif isinstance(node, yaml.SequenceNode) and isinstance(key, int) and key < len(node.value):
            node = node.value[key]
            line = node.start_mark.line + 1
        else:
            break
    return line


_AT = re.compile(r"Value error, ([A-Za-z_][\w-]*(?:\.[\w-]+)*): ")


def error_at(err: dict) -> tuple[tuple, str]:
    """A pydantic error's location and message. A model validator's error has no location: one whose message
    starts with a dotted path (`arms.1.init_from: ...`) is located there, so that it names the field's
    line."""
    m = None if err["loc"] else _AT.match(err["msg"])
    if m is None:
        return tuple(err["loc"]), err["msg"]
    return tuple(int(k) if k.isdigit() else k for k in m[1].split(".")), err["msg"][m.end():]


def _written(loc: tuple, tree: Any, missing: bool) -> tuple:
    """`loc` without the union members pydantic puts into it ('sft', 'bible', 'str'), which the user never
    wrote: the steps not found in the input, but for a missing field's own name. A field may share a tag's
    name (a cpt arm's `text`), so the input decides, not the name."""
    out, node = [], tree
    for i, key in enumerate(loc):
        if isinstance(node, dict) and key in node or \
                isinstance(node, list) and isinstance(key, int) and key < len(node):
            node = node[key]
        elif not (missing and i == len(loc) - 1):
            continue
        out.append(key)
    return tuple(out)


@lru_cache(maxsize=8)
def _schema(tasks: tuple[str, ...], arms: tuple[str, ...]) -> type[ExperimentConfig]:
    fields = {name: (Optional[task_registry.TASKS[name].spec], None) for name in tasks}
    tasks_model = create_model("Tasks", __base__=TasksBase, **fields)
    return create_model("ExperimentConfig", __base__=ExperimentConfig, tasks=(tasks_model, ...),
                        arms=(list[arm_union()], Field(min_length=1)))


def schema() -> type[ExperimentConfig]:
    """The config model of the tasks and arms registered now (plugins included)."""
    return _schema(tuple(task_registry.base.ordered()), tuple(ARMS))


def import_plugins(path: Path, tree: dict) -> None:
    """`plugins:` modules, imported before validation: they register tasks, prior sources and arms."""
    plugins = tree.get("plugins")
    if plugins is None:
        return
    if not isinstance(plugins, list) or not all(isinstance(p, str) for p in plugins):
        raise UserError(f"{_where(path, ('plugins',))}: plugins: expected a list of module names")
    for i, module in enumerate(plugins):
        try:
            importlib.import_module(module)
        except Exception as e:   # its own bug, a name another module registered: one line, never a traceback
            raise PluginMissing(f"{_where(path, ('plugins', i))}: plugins.{i}: cannot import {module!r} "
                                f"({type(e).__name__}: {e})") from None


def _where(path: Path, loc: tuple) -> str:
    line = line_of(path, loc)
    return f"{path}:{line}" if line else str(path)


def load_config(path: str | Path, overrides: list[str] = ()) -> ExperimentConfig:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: config file not found")
    tree = read_yaml(path) or {}
    if not isinstance(tree, dict):
        raise UserError(f"{path}: expected a mapping at the top level")
    apply_overrides(tree, list(overrides))
    import_plugins(path, tree)
    try:
        return schema().model_validate(tree)
    except ValidationError as e:
        errors = e.errors()
        # an unknown key first: a typo of a required key (budgt:) is the culprit, not the key it hides
        err = next((x for x in errors if x["type"] == "extra_forbidden"), errors[0])
        loc, msg = error_at(err)
        if err["loc"]:
            loc = _written(loc, tree, err["type"] == "missing")
        hidden = [str(x["loc"][-1]) for x in errors if err["type"] == "extra_forbidden"
                  and x["type"] == "missing" and x["loc"][:-1] == err["loc"][:-1]]
        guess = difflib.get_close_matches(str(loc[-1]), hidden, n=1) if hidden else []
        if guess:
            msg += f" (did you mean {guess[0]!r}?)"
        field = ".".join(str(p) for p in loc) or "(top level)"
        where = _where(path, loc)
        more = e.error_count() - 1 - len(guess)   # the key a typo hides is not one more error
        raise UserError(f"{where}: {field}: {msg}" + (f" (and {more} more)" if more else "")) from None


def dump_config(cfg: ExperimentConfig) -> str:
    tree = cfg.model_dump(mode="json")
    # a task the config does not use is left out: a plugin task registered in this process (its key, null)
    # would otherwise be written, and a process without the plugin (a DeepSpeed rank) would refuse the file
    tree["tasks"] = {name: spec for name, spec in tree["tasks"].items() if spec is not None}
    if cfg.deepspeed.hostfile:   # the hash counts the hosts, also once this job's hostfile is gone
        tree["deepspeed"]["nodes"] = cfg.deepspeed.node_count()
    return yaml.safe_dump(tree, sort_keys=False, allow_unicode=True)
