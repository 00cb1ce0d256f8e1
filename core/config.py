"""Experiment config: a YAML file validated by pydantic before any compute, with key=value overrides.

Errors name the file, the line and the field (``configs/x.yaml:12: arms.2.method: ...``), so a typo costs
seconds, not a training run.
"""
from __future__ import annotations

import difflib
import hashlib
import json
import re
from collections.abc import Hashable
from pathlib import Path
from typing import Annotated, Any, Literal, Optional, Union

import yaml
from pydantic import (AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator,
                      model_validator)

from core.data.mono import BibleText, MonoSource
from core.data.parallel import ParallelSource
from core.errors import UserError
from core.languages import language

REPO = Path(__file__).resolve().parents[1]


class Strict(BaseModel):
    # inf and nan are never a sensible epoch count, rate or price (.inf epochs overflowed deep in training)
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


Seed = Annotated[int, Field(ge=0, lt=2**32, description="what numpy accepts")]


def check_name(name: str, what: str = "") -> str:
    """Experiment, sweep and arm names become directory names, W&B ids and override keys (`arms.<name>.key`):
    no dots or slashes, no leading digit (`arms.1.key` is the index form)."""
    if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_-]{0,63}", name):
        raise ValueError(f"{what}{name!r} is not a valid name: a letter, then letters, digits, _ or - "
                         "(at most 64 characters)")
    return name


Name = Annotated[str, AfterValidator(check_name)]


class ModelSpec(Strict):
    name: str = Field(description="'gemma-3-270m' (packaged), 'tiny-llama' (built in-process), a local directory or a hub id")
    dtype: Literal["float32", "bfloat16", "float16", "auto"] = "auto"
    trust_remote_code: bool = False


class DataSpec(Strict):
    dir: Optional[str] = Field(None, description="data directory (UD, CLiKA); default: env YARN_DATA_DIR")
    # strict: `budget: true` would otherwise be read as 1 example
    budget: int = Field(gt=0, strict=True, description="labelled training examples per task direction, shared by every arm")
    test_size: int = Field(gt=0, strict=True, description="test items per task direction")
    dev_size: Optional[int] = Field(None, gt=0, description="dev items per task direction (held out from training "
                                    "and test, for every choice made before the test); default: test_size")
    token_budget: Optional[int] = Field(None, gt=1, description="training tokens of every pretraining arm (cpt, "
                                        "mixed); default: the tokens of the labelled budget, what one SFT epoch sees")


def _check_language(code: str) -> str:
    try:
        return language(code).code
    except UserError as e:
        raise ValueError(str(e)) from None


def _check_direction(d: str) -> str:
    parts = d.split("-")
    if len(parts) != 2 or parts[0] == parts[1]:
        raise ValueError(f"direction {d!r} must look like 'en-de'")
    for code in parts:
        _check_language(code)
    return d


class MtTask(Strict):
    """Machine translation: one budget of parallel pairs per direction."""
    directions: list[str] = Field(min_length=1, description="e.g. ['en-de', 'en-fr']")
    train: ParallelSource
    # Tried in order: the first source whose data is present is the test set (e.g. PUD, else held-out Bible books).
    test: list[ParallelSource] = Field(min_length=1)

    @field_validator("directions")
    @classmethod
    def _directions(cls, v: list[str]) -> list[str]:
        return [_check_direction(d) for d in v]


class PosTask(Strict):
    """Cross-lingual POS tagging (XGLUE-style): trained on English UD EWT, tested zero-shot on UD PUD."""
    test_langs: list[str] = Field(min_length=1, description="PUD languages, e.g. ['de', 'fr']")
    # None (unset, left out of the config hash) means "pairs"
    format: Optional[Literal["list", "pairs"]] = Field(
        None, description="answer format: pairs (unset): each given word copied with its tag, ' The/DET cat/NOUN', "
        "k of a PreTTY prior counting tags; list: the tags alone, ' DET NOUN', k counting text pieces")

    @field_validator("test_langs")
    @classmethod
    def _langs(cls, v: list[str]) -> list[str]:
        return [_check_language(lang) for lang in v]

    @property
    def directions(self) -> list[str]:
        return [f"en-{lang}" for lang in self.test_langs]

    @property
    def tag_format(self) -> str:
        # pairs. On EWT dev (Gemma-3-270M base, 20 sentences) neither format is followed zero-shot: strict
        # accuracy 0.0% for both (list and pairs 100% unparseable), pairs with an oracle k=1 prior 0.4%
        # (it goes on with the tag inventory, "Here/ADV/AUX/C/..."). Pairs because the words tie each tag to
        # its position: a lost word costs the words it shifts, not the sentence, and a prior counts tags.
        return self.format or "pairs"

    def max_new_tokens(self, eval_tokens: int) -> int:
        """Tokens an answer may take: eval.pos_max_new_tokens (about two per tag), twice that for pairs, where
        each tag follows its copied word (Gemma, PUD: a median 82 tokens a sentence against 34 for the tags
        alone, at most 241)."""
        return eval_tokens * (1 if self.tag_format == "list" else 2)


class KnowledgeTask(Strict):
    """CLiKA-style knowledge probes: the same multiple-choice items in every language, scored by the options'
    log-likelihood. Performance (RA) and consistency (en-CO) are measured against English."""
    sets: list[Literal["x_geo", "x_name", "x_csqa", "x_copa", "facts"]] = Field(min_length=1)
    langs: list[str] = Field(min_length=2, description="must include en, the reference language")
    scoring: Literal["loglik", "letter"] = Field(
        "loglik", description="loglik: the option with the highest mean token log-likelihood (works for base "
        "models); letter: the option letter the model generates (CLiKA's protocol, for instruction-following models)")
    # None (unset, left out of the config hash) means "tokens"
    normalise: Literal["tokens", "chars"] | None = Field(
        None, description="loglik scoring, over the option tokens after the options' common prefix: tokens (unset): "
        "log-probability per text-carrying token (a bare space piece joins the next); chars: per visible character")

    @field_validator("langs")
    @classmethod
    def _langs(cls, v: list[str]) -> list[str]:
        v = [_check_language(lang) for lang in v]
        if "en" not in v:
            raise ValueError("must include en: performance and consistency are measured against English")
        return v

    @property
    def directions(self) -> list[str]:
        """'<set>-<lang>': a record's src is the set, its tgt the language."""
        return [f"{s}-{lang}" for s in self.sets for lang in self.langs]


class TrainArgs(Strict):
    epochs: float = Field(1.0, gt=0)
    learning_rate: float = Field(2e-5, gt=0)
    batch_size: int = Field(8, gt=0, description="per device")
    grad_accum: int = Field(1, gt=0)
    max_length: int = Field(256, gt=8, description="examples longer than this are rejected, never silently cut")
    warmup_ratio: float = Field(0.0, ge=0, lt=1)
    logging_steps: int = Field(5, gt=0)
    save_steps: Optional[int] = Field(None, gt=0, description="checkpoint every N optimizer steps; a killed run "
                                      "started again resumes from the last complete one (default: final model only)")
    init_from: Optional[str] = Field(None, description="start from this earlier arm's checkpoint instead of the base "
                                     "model (two-stage, e.g. cpt then sft); the ledger adds both stages' costs")
    seed: Optional[Seed] = Field(None, description="training seed (initialisation of new weights, data order, "
                                "dropout); default: the experiment's seed. `seeds:` of the experiment sets it per copy")
    activation_checkpointing: Optional[bool] = Field(
        None, description="recompute activations in the backward pass: less memory, about a third more compute "
        "(not counted in MFU, which counts the model's FLOPs); default: off")


class ConductivityTask(TrainArgs):
    """CLiKA's conductivity: each `from_arms` model is fine-tuned (SFT under DeepSpeed) on the fictional facts of
    each language; XRR is then its accuracy on the facts stated in English only, asked in that language. The
    training arguments below apply to that fine-tune, which trains until `epochs`, then the gate is checked."""
    langs: list[str] = Field(min_length=1, description="CLiKA's target languages: ar de fr he it ja pl ru zh")
    from_arms: list[str] = Field(["base"], min_length=1, description="arms whose model is fine-tuned: base arms "
                                 "(any model) and sft, cpt, mixed arms (their checkpoint)")
    places: Optional[int] = Field(None, gt=0, description="reduced protocol: this many places, half of each type "
                                  "(default: all 400)")
    paraphrases: Optional[int] = Field(None, gt=0, description="reduced protocol: training rows per fact "
                                       "(default: all, about ten)")
    gate: float = Field(0.9, gt=0, le=1, description="accuracy every gate subset must reach for XRR to count "
                        "(translation, English type 0 and 1, X type 0)")
    max_new_tokens: int = Field(32, gt=0, description="answer length at test time")
    epochs: float = Field(10.0, gt=0)
    learning_rate: float = Field(5e-5, gt=0)

    @field_validator("langs")
    @classmethod
    def _langs(cls, v: list[str]) -> list[str]:
        from core.data.fictional import LANGS

        v = [_check_language(lang) for lang in v]
        unknown = [lang for lang in v if lang not in LANGS]
        if unknown:
            raise ValueError(f"no CLiKA fictional data for {unknown} (languages: {' '.join(LANGS)})")
        return v

    @model_validator(mode="after")
    def _no_init_from(self) -> "ConductivityTask":
        if self.init_from is not None:
            raise ValueError("init_from: the fine-tune starts from each of from_arms")
        return self

    @property
    def directions(self) -> list[str]:
        return [f"fictional-{lang}" for lang in self.langs]

    def probe_name(self, arm: str, lang: str) -> str:
        """The fine-tuned model's directory under checkpoints/."""
        return f"cd-{lang}-{arm}"

    def probe_arm(self, arm: str, lang: str) -> "SftArm":
        """The SFT arm that fine-tunes `arm`'s model on `lang`'s fictional facts, with this task's training arguments."""
        return SftArm(method="sft", name=self.probe_name(arm, lang),
                      **self.model_dump(include=set(TrainArgs.model_fields) - {"init_from"}))


class Tasks(Strict):
    mt: Optional[MtTask] = None
    pos: Optional[PosTask] = None
    knowledge: Optional[KnowledgeTask] = None
    conductivity: Optional[ConductivityTask] = None

    @model_validator(mode="after")
    def _some(self) -> "Tasks":
        if not self.units():
            raise ValueError("name at least one task (mt, pos, knowledge, conductivity)")
        return self

    def units(self) -> list[tuple[str, str]]:
        """Every (task, direction) an arm is evaluated on."""
        return [(name, d) for name in ("mt", "pos", "knowledge", "conductivity") if (t := getattr(self, name))
                for d in t.directions]


class BaseArm(Strict):
    """A model evaluated as it is: the experiment's base model, or `model`: any other model or checkpoint
    (e.g. another run's `checkpoints/sft/model`, whose `train.json` then supplies its training cost)."""
    method: Literal["base"]
    name: Name = "base"
    model: Optional[str] = None


class SftArm(TrainArgs):
    method: Literal["sft"]
    name: Name = "sft"
    padding_free: Optional[bool] = Field(None, description="TRL's padding-free batches: a batch is one row of "
                                         "concatenated examples, attention kept within each (default: padded)")


class LoraArm(TrainArgs):
    method: Literal["lora"]
    name: Name = "lora"
    learning_rate: float = Field(2e-4, gt=0)
    r: int = Field(16, gt=0)
    alpha: int = Field(32, gt=0)
    dropout: float = Field(0.05, ge=0, lt=1)
    target_modules: Union[str, list[str]] = "all-linear"
    padding_free: Optional[bool] = Field(None, description="as for sft")


class PretrainArm(TrainArgs):
    """Causal-LM training on monolingual text: `cpt` on one target language, `mixed` on several. Each stops at
    exactly data.token_budget training tokens; one sequence never holds two documents (no packing)."""
    method: Literal["cpt", "mixed"]
    name: Optional[Name] = Field(None, description="default: the method")
    langs: list[str] = Field(min_length=1, description="cpt: [the target language]; mixed: two or more")
    text: list[MonoSource] = Field(default_factory=lambda: [BibleText()], min_length=1,
                                   description="monolingual text sources (default: the Bible's training books)")
    probabilities: Optional[dict[str, float]] = Field(None, description="mixed: explicit sampling probability per language")
    alpha: float = Field(0.3, gt=0, le=1, description="mixed without probabilities: p_l proportional to n_l^alpha "
                         "(n_l: the language's tokens of text)")

    @model_validator(mode="after")
    def _check(self) -> "PretrainArm":
        self.name = self.name or self.method
        self.langs = [_check_language(lang) for lang in self.langs]
        if len(set(self.langs)) != len(self.langs):
            raise ValueError(f"langs repeats a language: {self.langs}")
        if self.method == "cpt" and len(self.langs) != 1:
            raise ValueError("cpt trains on one language (langs: [de]); use method: mixed for several")
        if self.method == "mixed" and len(self.langs) < 2:
            raise ValueError("mixed needs two or more langs")
        if self.epochs != 1:
            raise ValueError("epochs: a pretraining arm's length is data.token_budget, not epochs")
        if self.probabilities is not None:
            if set(self.probabilities) != set(self.langs):
                raise ValueError(f"probabilities must name exactly the langs {self.langs}")
            if any(p <= 0 for p in self.probabilities.values()) or abs(sum(self.probabilities.values()) - 1) > 1e-6:
                raise ValueError("probabilities must be positive and sum to 1")
        return self


class PrettyArm(Strict):
    method: Literal["pretty"]
    name: Optional[Name] = Field(None, description="default: pretty-<prior>-k<k>")
    prior: Literal["sft", "lora", "task_model", "dictionary", "frequent", "oracle"]
    k: int = Field(ge=0)
    from_arm: Optional[str] = Field(None, description="training arm whose checkpoint gives the prior (sft/lora priors)")
    task_model: Optional[str] = Field(None, description="task_model prior: any other model or checkpoint directory")
    dictionary_path: Optional[str] = Field(None, description="dictionary prior: TSV or FreeDict TEI file; "
                                           "default: a lexicon induced from the budget's own pairs")
    n_words: int = Field(1, ge=1, description="dictionary prior: translate the first n content words")

    @model_validator(mode="after")
    def _defaults(self) -> "PrettyArm":
        if self.name is None:
            self.name = check_name(f"pretty-{self.prior}-k{self.k}")
        if self.prior in ("sft", "lora") and self.from_arm is None:
            self.from_arm = self.prior
        if self.prior not in ("sft", "lora") and self.from_arm is not None:
            raise ValueError(f"from_arm is only used by prior: sft or lora, not prior: {self.prior}")
        if (self.prior == "task_model") != (self.task_model is not None):
            raise ValueError("task_model is required by, and only used by, prior: task_model")
        return self


Arm = Annotated[Union[BaseArm, SftArm, LoraArm, PretrainArm, PrettyArm], Field(discriminator="method")]
TRAINED = ("sft", "lora", "cpt", "mixed")
FULL_WEIGHTS = ("sft", "cpt", "mixed")   # arms whose checkpoint is a whole model another arm can start from


class DeepSpeedSpec(Strict):
    config: str = "configs/deepspeed/zero2.json"
    num_gpus: int = Field(1, gt=0, description="ranks per node; CPU ranks when no GPU is present")
    master_port: Optional[int] = Field(None, ge=1, le=65535,
                                       description="default: a free port, so runs side by side don't collide")
    hostfile: Optional[str] = Field(None, description="DeepSpeed hostfile for multi-node runs (e.g. written by Slurm)")

    def path(self) -> Path:
        """Relative DeepSpeed config paths are relative to the repository root."""
        p = Path(self.config)
        return p if p.is_absolute() else REPO / p


class EvalSpec(Strict):
    batch_size: int = Field(8, gt=0)
    max_new_tokens: int = Field(96, gt=0, description="translation")
    pos_max_new_tokens: int = Field(160, gt=0, description="POS tagging: about two tokens per tag")
    samples: int = Field(5, ge=0, description="sample outputs kept in each result record")


class WandbSpec(Strict):
    project: str = "yarn"
    entity: Optional[str] = None
    mode: Literal["auto", "online", "offline", "disabled"] = Field(
        "auto", description="auto: online when an API key is configured, else offline; never prompts")
    group: Optional[str] = Field(None, description="W&B group; default: the experiment name (a sweep sets its own)")


class ReportSpec(Strict):
    usd_per_device_hour: Optional[float] = Field(
        None, gt=0, description="price of one device-hour; the report then adds each arm's training cost in USD")
    peak_tflops: Optional[float] = Field(
        None, gt=0, description="the training device's peak TFLOP/s for MFU; default: core.ledger.PEAK_TFLOPS by GPU name")


class ExperimentConfig(Strict):
    name: Name
    seed: Seed = 0
    model: ModelSpec
    tasks: Tasks
    data: DataSpec
    arms: list[Arm] = Field(min_length=1)
    deepspeed: DeepSpeedSpec = DeepSpeedSpec()
    eval: EvalSpec = EvalSpec()
    wandb: WandbSpec = WandbSpec()
    report: ReportSpec = ReportSpec()
    output_dir: str = "runs"
    seeds: Optional[list[Seed]] = Field(None, min_length=1, description="train every training arm once per seed "
                                       "(and evaluate PreTTY arms once per seed of their prior's arm); the report "
                                       "shows mean ± sd over seeds. Default: one training run, seed `seed`")

    @model_validator(mode="after")
    def _token_budget(self) -> "ExperimentConfig":
        """Pretraining arms get the tokens SFT trains on; with several SFT epochs settings that is ambiguous."""
        if self.data.token_budget is None and any(a.method in ("cpt", "mixed") for a in self.arms):
            epochs = {a.epochs for a in self.arms if a.method in ("sft", "lora")}
            if len(epochs) > 1 or any(e != int(e) for e in epochs):
                raise ValueError(f"data.token_budget: the sft/lora arms train for {sorted(epochs)} epochs, so the "
                                 "pretraining arms' token budget is ambiguous; set data.token_budget")
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
            if isinstance(a, PrettyArm) and a.from_arm is not None:
                src = by_name.get(a.from_arm)
                if src is None or src.method != a.prior:   # else the record would call a LoRA prior "sft"
                    raise ValueError(f"arms.{i}.from_arm: prior {a.prior} needs from_arm to name a {a.prior} "
                                     f"arm of this experiment; {a.from_arm!r} is "
                                     + (f"a {src.method} arm" if src else "not an arm of it"))
        if self.tasks.conductivity:
            for start in self.tasks.conductivity.from_arms:
                if start not in by_name or by_name[start].method not in ("base", *FULL_WEIGHTS):
                    raise ValueError(f"tasks.conductivity.from_arms: {start!r} must name a base, sft, cpt or mixed "
                                     f"arm of this experiment")
                for lang in self.tasks.conductivity.langs:
                    check_name(self.tasks.conductivity.probe_name(start, lang), "tasks.conductivity: probe ")
        for i, a in enumerate(self.arms):
            start = getattr(a, "init_from", None)
            if start is not None:
                earlier = {b.name: b for b in self.arms[:i]}
                if start not in earlier or earlier[start].method not in FULL_WEIGHTS:
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
            raise ValueError(f"seeds: the seed copies' names clash with other arms: {clash}; rename those arms")
        return self

    def sft_epochs(self) -> int:
        """Epochs of the labelled budget's training arms (1 without any): what the derived token budget covers."""
        return int(next((a.epochs for a in self.arms if a.method in ("sft", "lora")), 1))

    def arm_runs(self) -> list:
        """Every arm as it is trained and evaluated: with `seeds`, each arm whose weights come from training (a
        training arm, a PreTTY arm with a model prior from one) once per seed. The first seed keeps the arm's name,
        the others are named `<arm>-seed<s>`, and their from_arm / init_from follow the same seed."""
        if not self.seeds:
            return list(self.arms)
        by_name = {a.name: a for a in self.arms}

        def seeded(a) -> bool:
            if a.method in TRAINED:
                return True
            return a.method == "pretty" and a.from_arm is not None and seeded(by_name[a.from_arm])

        def renamed(name: str | None, seed: int) -> str | None:
            return name if name is None or seed == self.seeds[0] else f"{name}-seed{seed}"

        out = []
        for a in self.arms:
            if not seeded(a):
                out.append(a)
                continue
            for seed in self.seeds:
                update = {"name": renamed(a.name, seed)}
                if a.method in TRAINED:
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
        return [a for a in self.arm_runs() if a.method in TRAINED]

    def hash(self) -> str:
        """Identity of an experiment: everything that changes results (not where they go, how they are logged
        or priced).
        Unset (None) fields are left out, so a new optional field in the schema keeps existing runs' hashes;
        the rendezvous port and hostfile say where ranks meet, not what they compute."""
        d = self.model_dump(mode="json", exclude_none=True, exclude={
            "output_dir": True, "wandb": True, "report": True, "deepspeed": {"master_port", "hostfile"}})
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
    if not key.isdigit() or int(key) >= len(node):
        raise UserError(f"override {dotted!r}: {key!r} is not an index of a {len(node)}-item list")
    return int(key)


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


def load_config(path: str | Path, overrides: list[str] = ()) -> ExperimentConfig:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: config file not found")
    tree = read_yaml(path) or {}
    if not isinstance(tree, dict):
        raise UserError(f"{path}: expected a mapping at the top level")
    apply_overrides(tree, list(overrides))
    try:
        return ExperimentConfig.model_validate(tree)
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
        line = line_of(path, loc)
        where = f"{path}:{line}" if line else str(path)
        more = e.error_count() - 1 - len(guess)   # the key a typo hides is not one more error
        raise UserError(f"{where}: {field}: {msg}" + (f" (and {more} more)" if more else "")) from None


def dump_config(cfg: ExperimentConfig) -> str:
    return yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False, allow_unicode=True)
