"""First stage: config -> run directory with the resolved config and the budgeted data.

Everything that can be wrong with the input is checked here, before any compute and before anything is
written: the model, the data directory, every data line, the budget, the output directory.
"""
from __future__ import annotations

import importlib
import json
import os
from pathlib import Path

import torch

from align.lexicon import read_dictionary
from core.arms import NudgeArm
from core.config import ExperimentConfig, PretrainArm, dump_config, load_config
from core.data import mixing
from core.data.budget import round_sizes
from core.data.decontaminate import Index, decontaminate
from core.data.mono import bible_held_out, documents
from core.errors import UserError
from core.io import atomic_write_json, atomic_write_jsonl, atomic_write_text, check_writable
from core.models import load_tokenizer, resolve
from core.provenance import torch_dtype
from core.rundir import RunDir
from tasks.base import Context


def data_dir(cfg: ExperimentConfig) -> Path | None:
    raw = cfg.data.dir or os.environ.get("YARN_DATA_DIR")
    if not raw:
        return None
    path = Path(raw).expanduser().resolve()
    if not path.is_dir():
        raise UserError(f"data.dir: data directory {raw!r} does not exist")
    return path


def prepare(cfg: ExperimentConfig, config_path: Path) -> Path:
    """Validate everything, then write <output_dir>/<name>/{config.yaml, data/*.jsonl}. Returns the run
    dir."""
    run = RunDir.of(cfg)
    out = run.root
    check_writable(out, "output_dir")
    if run.config.is_file():
        old = load_config(run.config)
        if old.hash() != cfg.hash():
            raise UserError(f"{out} holds a run of a different config (hash {old.hash()} != {cfg.hash()}); "
                            f"set name=... or remove the directory")
    check_kernels(cfg)   # before resolve(): building a packaged model is compute
    model_path = resolve(cfg.model.name)
    for i, arm in enumerate(cfg.arms):   # files an arm names: checked now, not when the arm's turn comes
        for field, check in (("task_model", resolve), ("model", resolve),
                             ("dictionary_path", read_dictionary)):
            if getattr(arm, field, None):
                try:
                    check(getattr(arm, field))
                except UserError as e:
                    raise UserError(f"arms.{i}.{field}: {e}") from None
    if cfg.jobs():
        check_launch(cfg)
    ctx = Context(cfg, data_dir(cfg), config_path.resolve().parent)
    rows, manifest, files = {"train": [], "dev": [], "test": []}, {}, {}
    tok = load_tokenizer(model_path, cfg.model.trust_remote_code)
    for i, arm in enumerate(cfg.arms):
        # a nudge arm swaps token ids between two models: before any training, not when its turn comes
        if isinstance(arm, NudgeArm) and arm.task_model and load_tokenizer(
                resolve(arm.task_model), cfg.model.trust_remote_code).get_vocab() != tok.get_vocab():
            raise UserError(f"arms.{i}.task_model: {arm.task_model} has another vocabulary than the base "
                            f"model {cfg.model.name}; nudging needs the same one")
    for task in cfg.tasks_used():
        prepared = task.prepare(ctx)
        for split, split_rows in prepared.rows.items():
            rows[split] += split_rows
        manifest |= prepared.manifest
        files |= prepared.files
        task.check_lengths(tok, prepared)
    train_rows = rows["train"]
    # prompt + completion + the EOS the trainer appends: what SFT trains on, per example
    lengths = [len(ids) + 1 for ids in tok([r["prompt"] + r["completion"] for r in train_rows]).input_ids] \
        if train_rows else []
    _check_lengths(cfg, train_rows, lengths)
    # unset, the pretraining arms get what SFT trains on: every labelled example, once per epoch
    streams = _pretraining_streams(cfg, tok, cfg.data.token_budget or cfg.sft_epochs() * sum(lengths),
                                   config_path.resolve().parent, rows["test"] + rows["dev"])

    _check_ranks(cfg, len(train_rows), {name: len(stream.rows) for name, stream in streams.items()})
    run.lock()   # every check passed: from here on this process is the run directory's one writer
    for arm_name, stream in streams.items():
        atomic_write_jsonl(run.pretraining(arm_name), stream.rows)
        manifest[f"pretrain {arm_name}"] = stream.manifest()
    for name, file_rows in files.items():
        atomic_write_jsonl(run.data(name), file_rows)
    for split, split_rows in rows.items():
        atomic_write_jsonl(run.rows(split), split_rows)
    atomic_write_json(run.manifest, manifest)
    atomic_write_text(run.config, dump_config(cfg))
    atomic_write_text(run.config_hash, cfg.hash() + "\n")
    return out


def _pretraining_streams(cfg: ExperimentConfig, tok, budget: int, base_dir: Path,
                         held_rows: list[dict]) -> dict[str, mixing.Stream]:
    """Each pretraining arm's sequence of `budget` tokens (data.token_budget, else the labelled examples'
    tokens: one SFT epoch), from text without the MT test and dev books (and their parallels) and without any
    document sharing an n-gram with a test or dev row (``held_rows``)."""
    arms = [(i, arm) for i, arm in enumerate(cfg.arms) if isinstance(arm, PretrainArm)]
    if budget == 0 and arms:
        raise UserError("data.token_budget: no labelled training examples to derive it from; set it")
    held_books = bible_held_out([s for task in cfg.tasks_used() for s in task.held_out_sources()])
    index = Index.of(held_rows) if arms else None
    streams = {}
    for i, arm in arms:
        what = f"arms.{i}.text ({arm.name})"
        try:
            docs = {lang: documents(arm.text, lang, base_dir, held_books) for lang in arm.langs}
        except UserError as e:
            raise UserError(f"{what}: {e}") from None
        docs, dropped = decontaminate(docs, index, tok)
        print(f"[prepare] {arm.name}: {budget:,} training tokens from "
              + ", ".join(f"{lang} ({len(d):,} documents, {dropped['by_lang'][lang]['hits']} dropped: "
                          f"test/dev n-grams)" for lang, d in docs.items()), flush=True)
        streams[arm.name] = mixing.build(docs, tok, budget, arm.max_length, cfg.seed, arm.alpha,
                                         arm.probabilities, what)
        streams[arm.name].decontamination = dropped
        if any(p > 1 for p in streams[arm.name].passes.values()):
            print(f"[prepare] {arm.name}: the budget repeats text ({streams[arm.name].passes} passes)",
                  flush=True)
    return streams


def _check_deepspeed(path: Path) -> dict:
    try:
        ds = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"deepspeed.config: {path} not found") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise UserError(f"deepspeed.config: {path}: not valid JSON ({e})") from None
    if not isinstance(ds, dict):
        raise UserError(f"deepspeed.config: {path}: expected a JSON object, got {type(ds).__name__}")
    return ds


def check_launch(cfg: ExperimentConfig) -> int:
    """What the DeepSpeed launch reads (its config, the hostfile), checked before any compute; returns the
    world size."""
    _check_deepspeed(cfg.deepspeed.path())
    return cfg.deepspeed.world_size()


def _unusable(module: str, package: str) -> str | None:
    """Why a GPU kernel package cannot run in this process, or None."""
    try:
        importlib.import_module(module)
    except Exception as e:   # not installed, or its own imports (Triton, CUDA libraries) fail
        reason = (str(e).strip().splitlines() or [type(e).__name__])[0][:120]
        return f"needs the {package} package, which does not import here ({reason})"
    if not torch.cuda.is_available():
        return "needs a CUDA GPU, and none is visible"
    return None


def check_kernels(cfg: ExperimentConfig) -> None:
    """model.attention: flash_attention_2 and an arm's use_liger_kernel need their package and a GPU: said
    now, in one line naming the field, not as a traceback from inside DeepSpeed after the model loaded."""
    if cfg.model.attention == "flash_attention_2":
        # flash-attn computes in bf16/fp16 only: transformers merely warns, and the first forward fails. A
        # float32 the config pins is refused on any machine; else a missing package is named first
        pinned_fp32 = cfg.model.dtype == "float32"
        if not pinned_fp32 and (why := _unusable("flash_attn", "flash-attn")):
            raise UserError(f"model.attention: flash_attention_2 {why}; use sdpa or auto")
        if pinned_fp32 or torch_dtype(cfg.model.dtype) == torch.float32:
            raise UserError(f"model.attention: flash_attention_2 computes in bfloat16 or float16, and "
                            f"model.dtype {cfg.model.dtype} is float32 here; set model.dtype: bfloat16, or "
                            "use sdpa")
    for i, arm in enumerate(cfg.arms):
        if not getattr(arm, "use_liger_kernel", None):
            continue
        if why := _unusable("liger_kernel.transformers", "liger-kernel"):
            raise UserError(f"arms.{i}.use_liger_kernel: arm {arm.name}: Liger {why}; remove "
                            "use_liger_kernel")
        zero = _check_deepspeed(cfg.deepspeed.path()).get("zero_optimization")
        if isinstance(arm, PretrainArm) and isinstance(zero, dict) and zero.get("stage") == 3:
            # the transformers Trainer lets Liger's fused cross-entropy replace the forward, and it reads the
            # LM head's weight directly: under ZeRO-3 that is an empty shard
            raise UserError(f"arms.{i}.use_liger_kernel: arm {arm.name}: Liger's fused cross-entropy reads "
                            "the LM head unsharded, which ZeRO-3 (deepspeed.config) partitions; use ZeRO-2")


def _check_ranks(cfg: ExperimentConfig, n_rows: int, n_sequences: dict[str, int]) -> None:
    """Every rank must get the same number of non-empty micro-batches (train/sampler.py): said now, not after
    model loading inside DeepSpeed."""
    for arm in cfg.trained_arms():
        n = n_sequences.get(cfg.family(arm.name), n_rows)
        try:
            round_sizes(n, arm.batch_size, cfg.deepspeed.world_size())
        except ValueError as e:
            raise UserError(f"arms: {arm.name}: batch_size: {e}") from None


def _check_lengths(cfg: ExperimentConfig, rows: list[dict], lengths: list[int]) -> None:
    """Examples longer than an arm's max_length are an error: truncating them would silently shrink the
    budget."""
    arms = [a for a in cfg.trained_arms() if a.method in ("sft", "lora")]
    if not arms or not rows:
        return
    limit = min(a.max_length for a in arms)
    longest = max(range(len(rows)), key=lengths.__getitem__)
    if lengths[longest] > limit:
        raise UserError(f"data: example {rows[longest]['id']} is {lengths[longest]} tokens, "
                        f"over max_length={limit}; raise the arms' max_length or use shorter data")
