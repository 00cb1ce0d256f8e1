"""Bad input, as a table: every row is one wrong input that must end with exit code 2 and one line naming the
culprit, before any compute and before anything is written.

To add a case, add ONE row to CASES:

    bad("data-budget-negative", run("data.budget=-1"), ["data.budget"]),
    #    id (readable)          argv                   words the message must contain

`bad(id, argv, words, code=2, files=None, before_compute=True)`:
- argv: what `cli.main` gets, built by `run(...)` (the smoke experiment, tiny model, with small local MT files
  and output_dir={tmp}/runs; default stage, so a wrongly accepted config reaches compute), `smoke(...)` (the
  same with the smoke config's own Bible/PUD data), `sweep(FILE)`, `report(...)` or `analyze(...)`, or a plain
  list. Placeholders: {tmp} (the case's tmp_path), {tiny} (the tiny model's directory), {smoke}, {repo}.
- words: each must appear in the error message, after {tmp}/{tiny}/{repo} in it are written back as
  placeholders (so "{tmp}/pairs.tsv:3" names the file and its line). Name the culprit: the field path
  (`arms.1.name`, `data.budget`), the file and line, the option (`--stage`).
- files: {relative path under {tmp}: str | bytes | builder(path, tiny_dir)} written before the call.
- before_compute: nothing under {tmp} may change (no checkpoints/, results/, data/ or run directory written).
  In every case the DeepSpeed launch, evaluation and model loading are sentinels that fail the case: this
  module never computes, so False only allows files written before the error.

Stderr must be one line `error: ...`, or argparse's usage and `prog: error: ...` (its SystemExit code is the
exit code); the words are looked up in the last line.
"""
from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

import cli

REPO = Path(__file__).resolve().parents[1]
SMOKE = str(REPO / "configs" / "experiments" / "smoke.yaml")
SMOKE_TEXT = Path(SMOKE).read_text(encoding="utf-8")
SMOKE_LINES = SMOKE_TEXT.splitlines()
BUDGET_LINE = SMOKE_LINES.index("  budget: 32") + 1   # 1-based line of data.budget in smoke.yaml


# ---------------------------------------------------------------- argv templates

# Small local MT data instead of the Bible and PUD: a case that passes validation reaches compute in a
# fraction of a second. The runner writes both files into every case's {tmp}.
OK_TRAIN = "".join(f"The house number {i} is small.\tDas Haus Nummer {i} ist klein.\n" for i in range(40))
OK_TEST = "".join(f"The tree number {i} is tall.\tDer Baum Nummer {i} ist hoch.\n" for i in range(12))
LOCAL_DATA = ("tasks.mt.train={source: file, path: {tmp}/ok-train.tsv}",
              "tasks.mt.test=[{source: file, path: {tmp}/ok-test.tsv}]")


def smoke(*overrides: str) -> list[str]:
    """The smoke experiment as it is (Bible training pairs, PUD test) with key=value overrides."""
    return ["run", "{smoke}", "output_dir={tmp}/runs", *overrides]


def run(*overrides: str) -> list[str]:
    """The smoke experiment on the small local MT files, with key=value overrides (later ones win)."""
    return smoke(*LOCAL_DATA, *overrides)


def mt_file(path: str, *overrides: str) -> list[str]:
    """The smoke experiment training on the MT file {tmp}/<path>."""
    return run(f"tasks.mt.train={{source: file, path: {{tmp}}/{path}}}", *overrides)


def sweep(file: str = "sweep.yaml", *args: str) -> list[str]:
    return ["sweep", f"{{tmp}}/{file}", "--dry-run", "--output-dir", "{tmp}/runs", *args]


def report(*args: str) -> list[str]:
    return ["report", *args]


def analyze(*args: str) -> list[str]:
    return ["analyze", *args]


# ---------------------------------------------------------------- file builders

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json")


def model_dir(config: str | None = "copy", tokenizer: bool = True, weights: str | bytes | None = "copy"):
    """A model directory from the tiny model's files: config.json copied, written as given, or absent
    (None); its tokenizer files or none; model.safetensors copied, "truncated" (its first half), the given
    bytes, or absent (None)."""
    def build(path: Path, tiny: Path) -> None:
        path.mkdir(parents=True)
        if config == "copy":
            shutil.copy(tiny / "config.json", path)
        elif config is not None:
            (path / "config.json").write_text(config)
        for name in TOKENIZER_FILES if tokenizer else ():
            shutil.copy(tiny / name, path)
        weights_file = tiny / "model.safetensors"
        if weights == "copy":
            shutil.copy(weights_file, path)
        elif weights == "truncated":
            data = weights_file.read_bytes()
            (path / "model.safetensors").write_bytes(data[: len(data) // 2])
        elif isinstance(weights, bytes):
            (path / "model.safetensors").write_bytes(weights)
    return build


def sweep_yaml(**fields) -> str:
    """A sweep file over the smoke experiment; a field set to None is left out."""
    spec = {"base": "configs/experiments/smoke.yaml", "name": "bad-sweep", "grid": {"data.budget": [8]}}
    spec |= fields
    return yaml.safe_dump({k: v for k, v in spec.items() if v is not None}, sort_keys=False)


def smoke_yaml(old: str = "", new: str = "", append: str = "") -> str:
    """smoke.yaml's text with one line replaced and/or lines appended."""
    text = SMOKE_TEXT.replace(old, new, 1) if old else SMOKE_TEXT
    return text + append


def run_dir_files(test_rows: str | None = None, config: str | None = None):
    """A prepared run directory for analyze: config.yaml (the smoke experiment, W&B disabled) and
    data/test.jsonl (one MT row unless given)."""
    def build(path: Path, tiny: Path) -> None:
        (path / "data").mkdir(parents=True)
        if config is None:
            tree = yaml.safe_load(SMOKE_TEXT)
            tree["wandb"]["mode"] = "disabled"
            (path / "config.yaml").write_text(yaml.safe_dump(tree))
        else:
            (path / "config.yaml").write_text(config)
        row = {"id": "file:x.tsv:1", "task": "mt", "direction": "en-de", "src_lang": "en", "tgt_lang": "de",
               "src": "The house.", "tgt": "Das Haus.", "prompt": "Translate this from English into German:\n"
               "English: The house.\nGerman:", "completion": " Das Haus."}
        (path / "data" / "test.jsonl").write_text(json.dumps(row) + "\n" if test_rows is None else test_rows)
    return build


RUN = {"run": run_dir_files()}          # analyze's run directory {tmp}/run
ANALYZE = ("--run-dir", "{tmp}/run", "--aligned", "{tiny}")   # past the arm lookup, up to model loading
DICT = "arms.4={method: pretty, prior: dictionary, k: 1, dictionary_path: {tmp}/%s}"
BASE_MODEL = "arms.0={method: base, model: {tmp}/m}"
TASK_MODEL = "arms.4={method: pretty, prior: task_model, task_model: {tmp}/m, k: 1}"
RECORD = json.dumps({"arm": "base", "task": "mt", "src": "en", "tgt": "de", "metrics": {"chrf": 1.0}})
LONG = "a" * 65
BAD_NAMES = [("dotdot", ".."), ("up-up", "../../x"), ("slash", "a/b"), ("semicolon", "a;b"), ("dot", "a.b"),
             ("digits", "'123'"), ("65-chars", LONG), ("empty", "''")]


# ---------------------------------------------------------------- the table

def bad(id: str, argv: list[str], words: list[str], code: int = 2, files: dict | None = None,
        before_compute: bool = True):
    return pytest.param(argv, code, words, files or {}, before_compute, id=id)


CASES = [
    # ---- top level
    bad("top-unknown-key", run("budgett=5"), ["budgett"]),
    bad("top-name-list", run("name=[a]"), ["name"]),
    bad("top-seed-not-int", run("seed=abc"), ["seed"]),
    bad("top-seeds-empty", run("seeds=[]"), ["seeds"]),
    bad("top-seed-over-numpy", run("seed=99999999999999999999999"), ["seed", "less than"]),
    bad("top-seed-negative", run("seed=-1"), ["seed"]),
    bad("data-budget-bool", run("data.budget=true"), ["data.budget"]),
    bad("sft-epochs-inf", run("arms.1.epochs=.inf"), ["arms.1.epochs", "finite"]),
    bad("lora-learning-rate-nan", run("arms.2.learning_rate=.nan"), ["arms.2.learning_rate"]),
    bad("sft-seed-negative", run("arms.1.seed=-1"), ["arms.1.seed"]),
    bad("top-seeds-repeated", run("seeds=[0, 0]"), ["seeds"]),
    bad("top-seeds-name-clash", run("seeds=[0, 1]", "arms.0.name=sft-seed1"), ["seeds", "sft-seed1"]),
    bad("top-arms-empty", run("arms=[]"), ["arms"]),
    bad("top-arms-not-list", run("arms=5"), ["arms"]),
    bad("top-tasks-none", run("tasks={}"), ["tasks"]),
    bad("top-model-null", run("model=null"), ["model"]),
    bad("top-output-dir-list", run("output_dir=[a]"), ["output_dir"]),
    bad("top-output-dir-unwritable", run("output_dir={tmp}/a-file/runs"), ["output_dir"],
        files={"a-file": ""}),
    bad("top-output-dir-other-config", run(), ["{tmp}/runs/smoke"],
        files={"runs/smoke/config.yaml": smoke_yaml("  budget: 32", "  budget: 16")}),
    bad("top-output-dir-broken-config", run(), ["{tmp}/runs/smoke/config.yaml"],
        files={"runs/smoke/config.yaml": "name: [\n"}),
    # ---- model
    bad("model-unknown-key", run("model.nme=x"), ["model.nme"]),
    bad("model-dtype", run("model.dtype=float8"), ["model.dtype"]),
    bad("model-trust-remote-code-not-bool", run("model.trust_remote_code=maybe"),
        ["model.trust_remote_code"]),
    bad("model-name-no-such-dir", run("model.name=./no/such/model"), ["no/such/model"]),
    bad("model-name-not-on-hub", run("model.name=someone/not-on-this-machine"),
        ["someone/not-on-this-machine"]),
    bad("model-name-a-file", run("model.name={tmp}/m.txt"), ["{tmp}/m.txt"], files={"m.txt": "x"}),
    bad("model-dir-no-config", run("model.name={tmp}/m"), ["{tmp}/m", "config.json"],
        files={"m": model_dir(config=None)}),
    bad("model-dir-config-not-json", run("model.name={tmp}/m"), ["{tmp}/m", "config.json"],
        files={"m": model_dir(config="{not json")}),
    bad("model-dir-no-tokenizer", run("model.name={tmp}/m"), ["{tmp}/m", "tokenizer"],
        files={"m": model_dir(tokenizer=False)}),
    bad("model-dir-garbage-weights", run("model.name={tmp}/m"), ["{tmp}/m", "model.safetensors"],
        files={"m": model_dir(weights=b"garbage, not safetensors")}),
    bad("model-dir-truncated-weights", run("model.name={tmp}/m"), ["{tmp}/m", "model.safetensors"],
        files={"m": model_dir(weights="truncated")}),
    bad("model-dir-no-weights", run("model.name={tmp}/m"), ["{tmp}/m"], files={"m": model_dir(weights=None)}),
    # ---- tasks.mt
    bad("mt-unknown-key", run("tasks.mt.direction=[en-de]"), ["tasks.mt.direction"]),
    bad("mt-directions-empty", run("tasks.mt.directions=[]"), ["tasks.mt.directions"]),
    bad("mt-direction-malformed", run("tasks.mt.directions=[ende]"), ["tasks.mt.directions", "ende"]),
    bad("mt-direction-same-language", run("tasks.mt.directions=[de-de]"), ["tasks.mt.directions", "de-de"]),
    bad("mt-direction-unknown-language", run("tasks.mt.directions=[en-xx]"), ["tasks.mt.directions", "xx"]),
    bad("mt-train-unknown-source", run("tasks.mt.train={source: ftp}"), ["tasks.mt.train", "ftp"]),
    bad("mt-train-file-no-path", run("tasks.mt.train={source: file}"), ["tasks.mt.train.path"]),
    bad("mt-train-file-unknown-key", run("tasks.mt.train={source: file, path: x.tsv, pth: y.tsv}"),
        ["tasks.mt.train.pth"]),
    bad("mt-test-empty", run("tasks.mt.test=[]"), ["tasks.mt.test"]),
    bad("mt-bible-book-67", run("tasks.mt.train={source: bible, test_books: [67]}"), ["test_books"]),
    bad("mt-bible-translation-language", run("tasks.mt.train={source: bible, translations: {xx: kjv}}"),
        ["translations", "xx"]),
    bad("mt-hub-one-field", run("tasks.mt.train={source: hub, name: a/b, src_field: en}"), ["tgt_field"]),
    # ---- tasks.pos, tasks.knowledge, tasks.conductivity
    bad("pos-unknown-key", run("tasks.pos={test_langs: [de], fmt: list}"), ["tasks.pos.fmt"]),
    bad("pos-test-langs-empty", run("tasks.pos={test_langs: []}"), ["tasks.pos.test_langs"]),
    bad("pos-format", run("tasks.pos={test_langs: [de], format: csv}"), ["tasks.pos.format"]),
    bad("pos-unknown-language", run("tasks.pos={test_langs: [xx]}"), ["tasks.pos.test_langs", "xx"]),
    bad("knowledge-no-english", run("tasks.knowledge={sets: [facts], langs: [de, fr]}"),
        ["tasks.knowledge.langs", "en"]),
    bad("knowledge-unknown-set", run("tasks.knowledge={sets: [trivia], langs: [en, de]}"),
        ["tasks.knowledge.sets"]),
    bad("knowledge-scoring", run("tasks.knowledge={sets: [facts], langs: [en, de], scoring: vote}"),
        ["tasks.knowledge.scoring"]),
    bad("knowledge-normalise", run("tasks.knowledge={sets: [facts], langs: [en, de], normalise: bytes}"),
        ["tasks.knowledge.normalise"]),
    bad("cond-language-not-clika", run("tasks.conductivity={langs: [es]}"),
        ["tasks.conductivity.langs", "es"]),
    bad("cond-from-arms-unknown", run("tasks.conductivity={langs: [de], from_arms: [nope]}"),
        ["tasks.conductivity.from_arms", "nope"]),
    bad("cond-from-arms-lora", run("tasks.conductivity={langs: [de], from_arms: [lora]}"),
        ["tasks.conductivity.from_arms", "lora"]),
    bad("cond-gate-above-1", run("tasks.conductivity={langs: [de], gate: 1.5}"), ["tasks.conductivity.gate"]),
    bad("cond-places-zero", run("tasks.conductivity={langs: [de], places: 0}"),
        ["tasks.conductivity.places"]),
    bad("cond-places-over-data", run("tasks.conductivity={langs: [de], places: 100000}"),
        ["tasks.conductivity.places"]),
    bad("cond-init-from", run("tasks.conductivity={langs: [de], init_from: sft}"),
        ["tasks.conductivity", "init_from"]),
    bad("cond-unknown-key", run("tasks.conductivity={langs: [de], epoch: 2}"), ["tasks.conductivity.epoch"]),
    # ---- data
    bad("data-unknown-key", run("data.budgt=5"), ["data.budgt"]),
    bad("data-budget-missing", run("data={test_size: 8}"), ["data.budget"]),
    bad("data-budget-negative", run("data.budget=-1"), ["data.budget"]),
    bad("data-budget-zero", run("data.budget=0"), ["data.budget"]),
    bad("data-budget-text", run("data.budget=many"), ["data.budget"]),
    bad("data-budget-fraction", run("data.budget=2.5"), ["data.budget"]),
    bad("data-test-size-zero", run("data.test_size=0"), ["data.test_size"]),
    bad("data-dev-size-negative", run("data.dev_size=-3"), ["data.dev_size"]),
    bad("data-token-budget-one", run("data.token_budget=1"), ["data.token_budget"]),
    bad("data-budget-over-bible", smoke("data.budget=1000000"), ["data.budget"]),
    bad("data-budget-over-file", run("data.budget=41"), ["data.budget"]),
    bad("data-test-size-over-file", run("data.test_size=13"), ["data.test_size"]),
    bad("data-dir-missing", run("data.dir=/no/such/data"), ["/no/such/data"]),
    bad("data-dir-a-file", run("data.dir={tmp}/a-file"), ["data.dir", "{tmp}/a-file"], files={"a-file": ""}),
    bad("data-budget-under-ranks", run("data.budget=1"), ["sft", "2 ranks"]),
    # ---- arms: base, sft, lora, cpt, mixed, pretty
    bad("arm-method-unknown", run("arms.0.method=rlhf"), ["arms.0", "rlhf"]),
    bad("arm-method-missing", run("arms.0={name: x}"), ["arms.0", "method"]),
    bad("arm-not-a-mapping", run("arms.0=sft"), ["arms.0"]),
    bad("base-unknown-key", run("arms.0.modle=x"), ["arms.0.modle"]),
    bad("sft-unknown-key", run("arms.1.lr=0.1"), ["arms.1.lr"]),
    bad("sft-epochs-zero", run("arms.1.epochs=0"), ["arms.1.epochs"]),
    bad("sft-learning-rate-negative", run("arms.1.learning_rate=-0.001"), ["arms.1.learning_rate"]),
    bad("sft-warmup-ratio-1", run("arms.1.warmup_ratio=1"), ["arms.1.warmup_ratio"]),
    bad("sft-warmup-ratio-negative", run("arms.1.warmup_ratio=-0.1"), ["arms.1.warmup_ratio"]),
    bad("sft-batch-size-zero", run("arms.1.batch_size=0"), ["arms.1.batch_size"]),
    bad("sft-grad-accum-zero", run("arms.1.grad_accum=0"), ["arms.1.grad_accum"]),
    bad("sft-save-steps-zero", run("arms.1.save_steps=0"), ["arms.1.save_steps"]),
    bad("sft-padding-free-not-bool", run("arms.1.padding_free=sometimes"), ["arms.1.padding_free"]),
    bad("sft-max-length-8", run("arms.1.max_length=8"), ["arms.1.max_length"]),
    bad("sft-max-length-under-data", run("arms.1.max_length=12"), ["max_length"]),
    bad("sft-init-from-unknown", run("arms.1.init_from=nope"), ["arms.1", "init_from", "nope"]),
    bad("sft-init-from-base", run("arms.1.init_from=base"), ["arms.1", "init_from", "base"]),
    bad("sft-init-from-later-arm",
        run("arms=[{method: sft, name: two, init_from: one}, {method: cpt, name: one, langs: [de]}]"),
        ["arms.0", "init_from", "one"]),
    bad("lora-r-zero", run("arms.2.r=0"), ["arms.2.r"]),
    bad("lora-alpha-text", run("arms.2.alpha=big"), ["arms.2.alpha"]),
    bad("lora-dropout-1", run("arms.2.dropout=1"), ["arms.2.dropout"]),
    bad("lora-target-modules-int", run("arms.2.target_modules=5"), ["arms.2.target_modules"]),
    bad("lora-unknown-key", run("arms.2.rank=4"), ["arms.2.rank"]),
    bad("cpt-two-langs", run("arms.1={method: cpt, langs: [de, fr]}"),
        ["arms.1", "cpt trains on one language"]),
    bad("cpt-epochs-2", run("arms.1={method: cpt, langs: [de], epochs: 2}"), ["arms.1", "data.token_budget"]),
    bad("cpt-langs-empty", run("arms.1={method: cpt, langs: []}"), ["arms.1.langs"]),
    bad("cpt-unknown-language", run("arms.1={method: cpt, langs: [xx]}"), ["arms.1", "xx"]),
    bad("cpt-text-unknown-source", run("arms.1={method: cpt, langs: [de], text: [{source: web}]}"),
        ["arms.1.text", "web"]),
    bad("cpt-text-file-missing",
        run("arms=[{method: cpt, langs: [de], text: [{source: text, path: /no/such.txt, lang: de}]}]"),
        ["arms.0.text", "/no/such.txt"]),
    bad("cpt-token-budget-ambiguous",
        run("arms=[{method: sft, epochs: 2}, {method: lora}, {method: cpt, langs: [de]}]"),
        ["data.token_budget"]),
    bad("mixed-one-lang", run("arms.1={method: mixed, langs: [de]}"), ["arms.1", "mixed"]),
    bad("mixed-lang-repeated", run("arms.1={method: mixed, langs: [de, de]}"), ["arms.1", "langs"]),
    bad("mixed-probabilities-sum",
        run("arms.1={method: mixed, langs: [de, fr], probabilities: {de: 0.5, fr: 0.6}}"),
        ["arms.1", "sum to 1"]),
    bad("mixed-probabilities-langs",
        run("arms.1={method: mixed, langs: [de, fr], probabilities: {de: 0.5, es: 0.5}}"),
        ["arms.1", "probabilities"]),
    bad("mixed-alpha-zero", run("arms.1={method: mixed, langs: [de, fr], alpha: 0}"), ["arms.1.alpha"]),
    bad("pretty-k-negative", run("arms.4.k=-1"), ["arms.4.k"]),
    bad("pretty-k-missing", run("arms.4={method: pretty, prior: oracle}"), ["arms.4.k"]),
    bad("pretty-prior-unknown", run("arms.4.prior=magic"), ["arms.4.prior"]),
    bad("pretty-n-words-zero", run("arms.5.n_words=0"), ["arms.5.n_words"]),
    bad("pretty-unknown-key", run("arms.4.kk=1"), ["arms.4.kk"]),
    bad("pretty-from-arm-unknown", run("arms.3.from_arm=nope"), ["arms.3", "from_arm", "nope"]),
    bad("pretty-from-arm-a-lora-arm", run("arms.3.from_arm=lora"), ["arms.3", "from_arm", "lora"]),
    bad("pretty-from-arm-on-oracle", run("arms.4.from_arm=sft"), ["arms.4", "from_arm"]),
    bad("pretty-task-model-without-prior", run("arms.4.task_model={tiny}"), ["arms.4", "task_model"]),
    bad("pretty-task-model-missing", run("arms.4={method: pretty, prior: task_model, k: 1}"),
        ["arms.4", "task_model"]),
    bad("arms-duplicate-name", run("arms.2.name=sft"), ["arms.2", "name", "sft"]),
    bad("arms-duplicate-default-name", run("arms.2={method: sft}"), ["arms.2", "name", "sft"]),
    # ---- arm and task model directories
    bad("arm-base-model-missing", run("arms.0={method: base, model: {tmp}/nope}"), ["arms.0", "{tmp}/nope"]),
    bad("arm-base-model-no-config", run(BASE_MODEL), ["arms.0", "{tmp}/m", "config.json"],
        files={"m": model_dir(config=None)}),
    bad("arm-base-model-config-not-json", run(BASE_MODEL), ["arms.0", "{tmp}/m", "config.json"],
        files={"m": model_dir(config="{not json")}),
    bad("arm-base-model-no-tokenizer", run(BASE_MODEL), ["arms.0", "{tmp}/m", "tokenizer"],
        files={"m": model_dir(tokenizer=False)}),
    bad("arm-base-model-garbage-weights", run(BASE_MODEL), ["arms.0", "{tmp}/m", "model.safetensors"],
        files={"m": model_dir(weights=b"garbage")}),
    bad("arm-base-model-truncated-weights", run(BASE_MODEL), ["arms.0", "{tmp}/m", "model.safetensors"],
        files={"m": model_dir(weights="truncated")}),
    bad("arm-task-model-missing",
        run("arms.4={method: pretty, prior: task_model, task_model: {tmp}/nope, k: 1}"),
        ["arms.4", "{tmp}/nope"]),
    bad("arm-task-model-no-config", run(TASK_MODEL), ["arms.4", "{tmp}/m", "config.json"],
        files={"m": model_dir(config=None)}),
    bad("arm-task-model-config-not-json", run(TASK_MODEL), ["arms.4", "{tmp}/m", "config.json"],
        files={"m": model_dir(config="[1, 2")}),
    bad("arm-task-model-no-tokenizer", run(TASK_MODEL), ["arms.4", "{tmp}/m", "tokenizer"],
        files={"m": model_dir(tokenizer=False)}),
    bad("arm-task-model-garbage-weights", run(TASK_MODEL), ["arms.4", "{tmp}/m", "model.safetensors"],
        files={"m": model_dir(weights=b"\x00" * 64)}),
    bad("arm-task-model-truncated-weights", run(TASK_MODEL), ["arms.4", "{tmp}/m", "model.safetensors"],
        files={"m": model_dir(weights="truncated")}),
    # ---- dictionaries (prior: dictionary)
    bad("dict-missing",
        run("arms.4={method: pretty, prior: dictionary, k: 1, dictionary_path: /no/such.tsv}"),
        ["arms.4", "/no/such.tsv"]),
    bad("dict-empty", run(DICT % "dict.tsv"), ["{tmp}/dict.tsv"], files={"dict.tsv": ""}),
    bad("dict-only-comments", run(DICT % "dict.tsv"), ["{tmp}/dict.tsv"], files={"dict.tsv": "# none\n\n"}),
    bad("dict-no-tab", run(DICT % "dict.tsv"), ["{tmp}/dict.tsv:2"],
        files={"dict.tsv": "house\tHaus\nno tab\n"}),
    bad("dict-three-fields", run(DICT % "dict.tsv"), ["{tmp}/dict.tsv:1"], files={"dict.tsv": "a\tb\tc\n"}),
    bad("dict-empty-target", run(DICT % "dict.tsv"), ["{tmp}/dict.tsv:2"],
        files={"dict.tsv": "a\tb\nc\t \n"}),
    bad("dict-not-utf8", run(DICT % "dict.tsv"), ["{tmp}/dict.tsv"], files={"dict.tsv": b"h\xe4us\tHaus\n"}),
    bad("dict-tei-malformed", run(DICT % "dict.tei"), ["{tmp}/dict.tei"], files={"dict.tei": "<TEI><entry>"}),
    # ---- deepspeed
    bad("ds-unknown-key", run("deepspeed.gpus=2"), ["deepspeed.gpus"]),
    bad("ds-num-gpus-zero", run("deepspeed.num_gpus=0"), ["deepspeed.num_gpus"]),
    bad("ds-num-gpus-text", run("deepspeed.num_gpus=all"), ["deepspeed.num_gpus"]),
    bad("ds-master-port-text", run("deepspeed.master_port=abc"), ["deepspeed.master_port"]),
    bad("ds-master-port-over-65535", run("deepspeed.master_port=70000"), ["deepspeed.master_port"]),
    bad("ds-config-missing", run("deepspeed.config={tmp}/ds.json"), ["deepspeed.config", "{tmp}/ds.json"]),
    bad("ds-config-not-json", run("deepspeed.config={tmp}/ds.json"), ["deepspeed.config", "{tmp}/ds.json"],
        files={"ds.json": '{"zero_optimization": {"stage": 3,}\n'}),
    bad("ds-config-a-list", run("deepspeed.config={tmp}/ds.json"), ["deepspeed.config", "{tmp}/ds.json"],
        files={"ds.json": '[{"zero_optimization": {"stage": 3}}]\n'}),
    bad("ds-hostfile-missing", run("deepspeed.hostfile={tmp}/hosts"), ["deepspeed.hostfile", "{tmp}/hosts"]),
    # ---- eval, wandb, report sections
    bad("eval-unknown-key", run("eval.beams=4"), ["eval.beams"]),
    bad("eval-batch-size-zero", run("eval.batch_size=0"), ["eval.batch_size"]),
    bad("eval-max-new-tokens-text", run("eval.max_new_tokens=lots"), ["eval.max_new_tokens"]),
    bad("eval-samples-negative", run("eval.samples=-1"), ["eval.samples"]),
    bad("wandb-unknown-key", run("wandb.team=x"), ["wandb.team"]),
    bad("wandb-mode", run("wandb.mode=sometimes"), ["wandb.mode"]),
    bad("wandb-project-list", run("wandb.project=[a]"), ["wandb.project"]),
    bad("report-section-price-negative", run("report.usd_per_device_hour=-1"),
        ["report.usd_per_device_hour"]),
    bad("report-section-peak-zero", run("report.peak_tflops=0"), ["report.peak_tflops"]),
    bad("report-section-unknown-key", run("report.currency=eur"), ["report.currency"]),
    # ---- names that become paths: experiment, arm (lora: no other arm refers to it), sweep
    *[bad(f"name-{nid}", run(f"name={name}"), ["name"]) for nid, name in BAD_NAMES],
    *[bad(f"arm-name-{nid}", run(f"arms.2.name={name}"), ["arms.2.name"]) for nid, name in BAD_NAMES],
    *[bad(f"sweep-name-{nid}", sweep(), ["{tmp}/sweep.yaml", "name"],
          files={"sweep.yaml": sweep_yaml(name=yaml.safe_load(name))}) for nid, name in BAD_NAMES],
    # ---- overrides
    bad("override-no-equals", run("data.budget"), ["data.budget"]),
    bad("override-empty-key", run("=5"), ["=5"]),
    bad("override-index-out-of-range", run("arms.9.k=1"), ["arms.9"]),
    bad("override-index-not-a-number", run("arms.x.k=1"), ["arms.x"]),
    bad("override-index-negative", run("arms.-1.k=1"), ["arms.-1"]),
    bad("override-value-not-yaml", run("data.budget={"), ["data.budget"]),
    bad("override-child-of-scalar", run("seed.x=1"), ["seed.x"]),
    bad("override-grandchild-of-scalar", run("data.budget.x.y=1"), ["data.budget.x.y"]),
    bad("override-duplicate-key-in-value", run("eval={batch_size: 4, samples: 1, samples: 2}"),
        ["eval", "samples"]),
    bad("override-after-stage-option", ["run", "{smoke}", "--stage", "prepare", "output_dir={tmp}/runs",
                                        "data.budgett=5"], ["data.budgett"]),
    # ---- config files
    bad("config-missing", ["run", "{tmp}/nope.yaml"], ["{tmp}/nope.yaml"]),
    bad("config-not-utf8", ["run", "{tmp}/x.yaml"], ["{tmp}/x.yaml"], files={"x.yaml": b"\xff\xfename: x\n"}),
    bad("config-invalid-yaml", ["run", "{tmp}/x.yaml"], ["{tmp}/x.yaml:2"],
        files={"x.yaml": "name: x\n  seed: 1\n"}),
    bad("config-top-level-list", ["run", "{tmp}/x.yaml"], ["{tmp}/x.yaml"], files={"x.yaml": "- name: x\n"}),
    bad("config-top-level-scalar", ["run", "{tmp}/x.yaml"], ["{tmp}/x.yaml"], files={"x.yaml": "smoke\n"}),
    bad("config-empty", ["run", "{tmp}/x.yaml"], ["{tmp}/x.yaml"], files={"x.yaml": ""}),
    bad("config-extra-key-names-line", ["run", "{tmp}/x.yaml"],
        [f"{{tmp}}/x.yaml:{BUDGET_LINE + 1}", "data.budgt"],
        files={"x.yaml": smoke_yaml("  budget: 32\n", "  budget: 32\n  budgt: 32\n")}),
    # a typo of a required key: the typo is the culprit, not the key it hides (README's example)
    bad("config-typo-names-line", ["run", "{tmp}/x.yaml"], [f"{{tmp}}/x.yaml:{BUDGET_LINE}", "data.budgt"],
        files={"x.yaml": smoke_yaml("  budget: 32", "  budgt: 32")}),
    bad("config-duplicate-top-key", ["run", "{tmp}/x.yaml"], ["{tmp}/x.yaml", "seed"],
        files={"x.yaml": smoke_yaml(append="seed: 1\n")}),
    bad("config-duplicate-nested-key",
        ["run", "{tmp}/x.yaml"], [f"{{tmp}}/x.yaml:{BUDGET_LINE + 1}", "budget"],
        files={"x.yaml": smoke_yaml("  budget: 32\n", "  budget: 32\n  budget: 4\n")}),
    # ---- MT data files (tasks.mt.train / test = {source: file, path: P}): P:line
    bad("tsv-no-tab", mt_file("p.tsv"), ["{tmp}/p.tsv:3"],
        files={"p.tsv": "Hello\tHallo\nGood morning\tGuten Morgen\nno tab here\n"}),
    bad("tsv-two-tabs", mt_file("p.tsv"), ["{tmp}/p.tsv:2"], files={"p.tsv": "a\tb\nc\td\te\n"}),
    bad("tsv-empty-source", mt_file("p.tsv"), ["{tmp}/p.tsv:2"], files={"p.tsv": "a\tb\n\tHallo\n"}),
    bad("tsv-empty-target", mt_file("p.tsv"), ["{tmp}/p.tsv:1"], files={"p.tsv": "Hello\t  \n"}),
    bad("tsv-empty-file", mt_file("p.tsv"), ["{tmp}/p.tsv"], files={"p.tsv": ""}),
    bad("tsv-only-comments", mt_file("p.tsv"), ["{tmp}/p.tsv"], files={"p.tsv": "# nothing yet\n\n"}),
    bad("tsv-not-utf8", mt_file("p.tsv"), ["{tmp}/p.tsv:2"],
        files={"p.tsv": b"Hello\tHallo\nGr\xfc\xdfe\tHi\n"}),
    bad("tsv-missing", mt_file("p.tsv"), ["{tmp}/p.tsv"]),
    bad("mt-file-unknown-extension", mt_file("p.csv"), ["{tmp}/p.csv"], files={"p.csv": "a,b\n"}),
    bad("jsonl-not-json", mt_file("p.jsonl"), ["{tmp}/p.jsonl:2"],
        files={"p.jsonl": '{"src": "a", "tgt": "b"}\n{oops\n'}),
    bad("jsonl-missing-field", mt_file("p.jsonl"), ["{tmp}/p.jsonl:1", "tgt"],
        files={"p.jsonl": '{"src": "a"}\n'}),
    bad("jsonl-a-list", mt_file("p.jsonl"), ["{tmp}/p.jsonl:1"], files={"p.jsonl": '["a", "b"]\n'}),
    bad("jsonl-not-a-string", mt_file("p.jsonl"), ["{tmp}/p.jsonl:1", "src"],
        files={"p.jsonl": '{"src": 1, "tgt": "b"}\n'}),
    bad("mt-test-file-malformed", run("tasks.mt.test=[{source: file, path: {tmp}/t.tsv}]"), ["{tmp}/t.tsv:2"],
        files={"t.tsv": "a\tb\nc\n"}),
    # ---- sweep files (sweep FILE --dry-run)
    bad("sweep-missing", sweep("nope.yaml"), ["{tmp}/nope.yaml"]),
    bad("sweep-invalid-yaml", sweep(), ["{tmp}/sweep.yaml"], files={"sweep.yaml": "base: [\n"}),
    bad("sweep-not-utf8", sweep(), ["{tmp}/sweep.yaml"], files={"sweep.yaml": b"name: \xff\n"}),
    bad("sweep-top-level-list", sweep(), ["{tmp}/sweep.yaml"], files={"sweep.yaml": "- base: x\n"}),
    bad("sweep-unknown-key", sweep(), ["{tmp}/sweep.yaml", "gird"],
        files={"sweep.yaml": sweep_yaml(gird={"a": [1]})}),
    bad("sweep-no-base", sweep(), ["{tmp}/sweep.yaml", "base"], files={"sweep.yaml": sweep_yaml(base=None)}),
    bad("sweep-neither-grid-nor-paired", sweep(), ["{tmp}/sweep.yaml", "grid", "paired"],
        files={"sweep.yaml": sweep_yaml(grid=None)}),
    bad("sweep-paired-lengths", sweep(), ["{tmp}/sweep.yaml", "paired"],
        files={"sweep.yaml": sweep_yaml(grid=None, paired={"data.budget": [8, 16], "data.test_size": [4]})}),
    bad("sweep-empty-list", sweep(), ["{tmp}/sweep.yaml", "data.budget"],
        files={"sweep.yaml": sweep_yaml(grid={"data.budget": []})}),
    bad("sweep-grid-not-a-list", sweep(), ["{tmp}/sweep.yaml", "data.budget"],
        files={"sweep.yaml": sweep_yaml(grid={"data.budget": 8})}),
    bad("sweep-duplicate-key", sweep(), ["{tmp}/sweep.yaml", "grid"],
        files={"sweep.yaml": "base: configs/experiments/smoke.yaml\nname: s\ngrid:\n  data.budget: [8]\n"
               "grid:\n  data.test_size: [4]\n"}),
    bad("sweep-point-invalid", sweep(), ["data.budget"],
        files={"sweep.yaml": sweep_yaml(grid={"data.budget": [-1]})}),
    bad("sweep-point-unknown-key", sweep(), ["data.budgt"],
        files={"sweep.yaml": sweep_yaml(grid={"data.budgt": [8]})}),
    bad("sweep-base-missing", sweep(), ["nope.yaml"],
        files={"sweep.yaml": sweep_yaml(base="configs/experiments/nope.yaml")}),
    bad("sweep-bad-override", sweep(), ["data.budget"],
        files={"sweep.yaml": sweep_yaml(overrides=["data.budget"])}),
    # ---- report RUN_DIR
    bad("report-dir-missing", report("{tmp}/nope"), ["{tmp}/nope"]),
    bad("report-no-results", report("{tmp}/run"), ["{tmp}/run", "results.jsonl"],
        files={"run/config.txt": ""}),
    bad("report-results-empty", report("{tmp}/run"), ["{tmp}/run/results.jsonl"],
        files={"run/results.jsonl": ""}),
    bad("report-results-not-json", report("{tmp}/run"), ["{tmp}/run/results.jsonl:2"],
        files={"run/results.jsonl": RECORD + "\n{oops\n"}),
    bad("report-results-line-a-list", report("{tmp}/run"), ["{tmp}/run/results.jsonl:1"],
        files={"run/results.jsonl": "[1, 2]\n"}),
    bad("report-results-no-arm", report("{tmp}/run"), ["{tmp}/run/results.jsonl:1", "arm"],
        files={"run/results.jsonl": '{"metrics": {}}\n'}),
    bad("report-results-not-utf8", report("{tmp}/run"), ["{tmp}/run/results.jsonl"],
        files={"run/results.jsonl": b'{"arm": "b\xe4se"}\n'}),
    bad("report-config-broken", report("{tmp}/run"), ["{tmp}/run/config.yaml"],
        files={"run/config.yaml": "name: [\n", "run/results.jsonl": RECORD + "\n"}),
    bad("report-price-negative", report("{tmp}/run", "--usd-per-device-hour", "-1"), ["usd-per-device-hour"],
        files={"run/results.jsonl": RECORD + "\n"}),
    bad("report-price-zero", report("{tmp}/run", "--usd-per-device-hour", "0"), ["usd-per-device-hour"],
        files={"run/results.jsonl": RECORD + "\n"}),
    bad("report-price-text", report("{tmp}/run", "--usd-per-device-hour", "cheap"), ["usd-per-device-hour"]),
    bad("report-no-dir-argument", report(), ["run_dir"]),
    # ---- analyze --run-dir RUN_DIR
    bad("analyze-no-run-dir-option", analyze(), ["--run-dir"]),
    bad("analyze-run-dir-missing", analyze("--run-dir", "{tmp}/nope"), ["{tmp}/nope"]),
    bad("analyze-no-test-rows", analyze("--run-dir", "{tmp}/run"), ["{tmp}/run/data/test.jsonl"],
        files={"run": run_dir_files(test_rows="")}),
    bad("analyze-test-rows-not-json", analyze("--run-dir", "{tmp}/run"), ["{tmp}/run/data/test.jsonl:1"],
        files={"run": run_dir_files(test_rows="{oops\n")}),
    bad("analyze-config-broken", analyze(*ANALYZE), ["{tmp}/run/config.yaml"],
        files={"run": run_dir_files(config="name: [\n")}),
    bad("analyze-arm-unknown", analyze("--run-dir", "{tmp}/run", "--arm", "nope"), ["arm", "nope"],
        files=RUN),
    bad("analyze-arm-not-trained", analyze("--run-dir", "{tmp}/run", "--arm", "sft"), ["sft"], files=RUN),
    bad("analyze-arm-not-a-training-arm", analyze("--run-dir", "{tmp}/run", "--arm", "base"), ["base"],
        files=RUN),
    bad("analyze-task-unknown", analyze("--run-dir", "{tmp}/run", "--task", "knowledge"), ["--task"],
        files=RUN),
    bad("analyze-direction-absent", analyze(*ANALYZE, "--direction", "en-fr"), ["en-fr"], files=RUN),
    bad("analyze-aligned-missing", analyze("--run-dir", "{tmp}/run", "--aligned", "{tmp}/nope"),
        ["{tmp}/nope"],
        files=RUN),
    bad("analyze-adapter-not-an-adapter", analyze(*ANALYZE, "--adapter"), ["{tiny}", "adapter_config.json"],
        files=RUN),
    bad("analyze-base-missing", analyze(*ANALYZE, "--base", "{tmp}/nope"), ["{tmp}/nope"], files=RUN),
    bad("analyze-n-zero", analyze(*ANALYZE, "--n", "0"), ["--n"], files=RUN),
    bad("analyze-n-negative", analyze(*ANALYZE, "--n", "-1"), ["--n"], files=RUN),
    bad("analyze-batch-size-zero", analyze(*ANALYZE, "--batch-size", "0"), ["--batch-size"], files=RUN),
    bad("analyze-max-new-tokens-zero", analyze(*ANALYZE, "--max-new-tokens", "0"), ["--max-new-tokens"],
        files=RUN),
    bad("analyze-dtype-unknown", analyze(*ANALYZE, "--dtype", "float8"), ["--dtype"], files=RUN),
    bad("analyze-out-unwritable", analyze(*ANALYZE, "--out", "{tmp}/a-file/x.json"), ["{tmp}/a-file"],
        files={**RUN, "a-file": ""}),
    bad("analyze-unknown-option", analyze("--run-dir", "{tmp}/run", "--bogus"), ["--bogus"], files=RUN),
    # ---- run arguments
    bad("run-stage-unknown", run("--stage", "bogus"), ["--stage", "bogus"]),
    bad("run-split-unknown", run("--split", "train"), ["--split", "train"]),
    bad("run-unknown-option", run("--bogus"), ["--bogus"]),
    bad("run-unknown-option-after-stage", ["run", "{smoke}", "--stage", "prepare", "--bogus"], ["--bogus"]),
    bad("run-no-config", ["run"], ["config"]),
    bad("unknown-verb", ["frobnicate"], ["frobnicate"]),
]


# ---------------------------------------------------------------- the runner

class ReachedCompute(BaseException):
    """Raised by the compute sentinels; a BaseException so that no `except Exception` swallows it."""


@pytest.fixture
def no_compute(monkeypatch):
    """Every compute entry point fails the case loudly: the DeepSpeed launch, evaluation, model loading."""
    def sentinel(what):
        def fail(*args, **kwargs):
            raise ReachedCompute(what)
        return fail

    import eval.run
    import core.models

    monkeypatch.setattr("train.launch.run_tree", sentinel("train.launch.run_tree (the DeepSpeed launch)"))
    monkeypatch.setattr("eval.ranks.run_tree", sentinel("eval.ranks.run_tree (evaluation ranks)"))
    monkeypatch.setattr(eval.run.Evaluator, "run", sentinel("eval.run.Evaluator.run"))
    monkeypatch.setattr(core.models, "load_model", sentinel("core.models.load_model"))
    monkeypatch.setattr(eval.run, "load_model", sentinel("core.models.load_model (eval.run)"))


def _fill(text: str, tmp: Path, tiny: str) -> str:
    return text.replace("{tmp}", str(tmp)).replace("{tiny}", tiny).replace("{smoke}", SMOKE) \
        .replace("{repo}", str(REPO))


def _unfill(text: str, tmp: Path, tiny: str) -> str:
    return text.replace(str(tmp), "{tmp}").replace(tiny, "{tiny}").replace(str(REPO), "{repo}")


def _write(tmp: Path, files: dict, tiny: str) -> None:
    (tmp / "ok-train.tsv").write_text(OK_TRAIN, encoding="utf-8")
    (tmp / "ok-test.tsv").write_text(OK_TEST, encoding="utf-8")
    for rel, content in files.items():
        path = tmp / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if callable(content):
            content(path, Path(tiny))
        elif isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")


def _tree(tmp: Path) -> dict[str, tuple]:
    return {str(p.relative_to(tmp)): (p.is_dir(), None if p.is_dir() else p.stat().st_size,
                                      p.stat().st_mtime_ns) for p in tmp.rglob("*")}


def call(argv: list[str]) -> int:
    """cli.main's exit code, as the shell would see it: argparse's SystemExit gives its code."""
    try:
        return cli.main(argv)
    except SystemExit as e:
        return e.code if isinstance(e.code, int) else (0 if e.code is None else 1)


@pytest.mark.parametrize("argv, code, words, files, before_compute", CASES)
def test_bad_input(argv, code, words, files, before_compute, tmp_path, tiny_model, capsys, no_compute):
    _write(tmp_path, files, tiny_model)
    before = _tree(tmp_path)
    capsys.readouterr()
    try:
        got = call([_fill(a, tmp_path, tiny_model) for a in argv])
    except ReachedCompute as e:
        pytest.fail(f"accepted: reached compute ({e}) instead of exit {code}")
    except Exception as e:   # a traceback: the shell would see exit 1
        why = _unfill(str(e), tmp_path, tiny_model)[:300]
        pytest.fail(f"crashed (exit 1) with {type(e).__name__}: {why}")
    err = _unfill(capsys.readouterr().err.strip(), tmp_path, tiny_model)
    lines = err.splitlines()
    message = lines[-1] if lines else ""
    assert got == code, f"exit {got}, expected {code}; stderr: {err[-500:]!r}"
    argparse_form = len(lines) > 1 and lines[0].startswith("usage:") and ": error: " in message
    assert argparse_form or (len(lines) == 1 and message.startswith("error: ")), \
        f"stderr must be one line 'error: ...' (or argparse's usage + error), got {err[-800:]!r}"
    missing = [w for w in words if w not in message]
    assert not missing, f"message lacks {missing}: {message!r}"
    if before_compute:
        after = _tree(tmp_path)
        changed = sorted(set(after.items()) ^ set(before.items()))
        made = [p for p, _ in changed if Path(p).name in ("checkpoints", "results")]
        assert not made, f"compute output written: {made}"
        assert not changed, f"files written or changed under {{tmp}}: {sorted({p for p, _ in changed})[:10]}"


# ---------------------------------------------------------------- beyond the table

def test_table_is_a_suite():
    ids = [c.id for c in CASES]
    assert len(ids) >= 110 and len(set(ids)) == len(ids), "case ids must be unique"


def test_a_valid_run_reaches_the_sentinel(tmp_path, tiny_model, capsys, no_compute):
    """The table's "before compute" means something: the same inputs, made valid, do reach compute."""
    _write(tmp_path, {}, tiny_model)
    with pytest.raises(ReachedCompute):
        call([_fill(a, tmp_path, tiny_model) for a in run()])


def test_missing_test_data_falls_back_but_explicit_missing_data_fails(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("YARN_DATA_DIR", raising=False)
    # PUD needs the data directory; with none, the demo's test list falls back to held-out Bible books ...
    code = cli.main(["run", SMOKE, f"output_dir={tmp_path}/runs",
                     "tasks.mt.test=[{source: pud}, {source: bible}]", "--stage", "prepare"])
    assert code == 0
    # ... but a run that names only PUD says what is missing.
    capsys.readouterr()
    code = cli.main(["run", SMOKE, f"output_dir={tmp_path}/runs2", "name=pud-only",
                     "tasks.mt.test=[{source: pud}]", "data.dir=null", "--stage", "prepare"])
    assert code == 2 and "YARN_DATA_DIR" in capsys.readouterr().err


def test_launch_sh_exit_code_and_help():
    out = subprocess.run([str(REPO / "launch.sh"), "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "report RUN_DIR" in out.stdout
    bad = subprocess.run([str(REPO / "launch.sh"), "run", "configs/experiments/nope.yaml"],
                         capture_output=True, text=True)
    assert bad.returncode == 2 and "nope.yaml: config file not found" in bad.stderr
    assert re.fullmatch(r"error: [^\n]+", bad.stderr.strip())
