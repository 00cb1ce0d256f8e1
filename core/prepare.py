"""First stage: config -> run directory with the resolved config and the budgeted data.

Everything that can be wrong with the input is checked here, before any compute and before anything is
written: the model, the data directory, every data line, the budget, the output directory.
"""
from __future__ import annotations

import os
from pathlib import Path

from core.config import ExperimentConfig, MtTask, PretrainArm, dump_config
from core.data import fictional, knowledge, mixing
from core.data.mono import documents
from core.data.budget import check_disjoint, round_sizes, select
from core.data.parallel import Pair, load_pairs
from core.data.ud import TaggedSentence, load_tagged
from core.errors import DataMissing, UserError
from core.io import atomic_write_json, atomic_write_jsonl, atomic_write_text
from core.models import load_tokenizer, resolve
from core.prompts import (answer_completion, letter_prompt, question_prompt, tagging_completion, tagging_prompt,
                          translation_completion, translation_prompt)


def data_dir(cfg: ExperimentConfig) -> Path | None:
    raw = cfg.data.dir or os.environ.get("YARN_DATA_DIR")
    if not raw:
        return None
    path = Path(raw).expanduser().resolve()
    if not path.is_dir():
        raise UserError(f"data.dir: data directory {raw!r} does not exist")
    return path


def run_dir(cfg: ExperimentConfig) -> Path:
    return Path(cfg.output_dir).resolve() / cfg.name


def _check_writable(directory: Path) -> None:
    existing = directory
    while not existing.exists():
        existing = existing.parent
    if not os.access(existing, os.W_OK | os.X_OK) or not existing.is_dir():
        raise UserError(f"output_dir: {existing} is not a writable directory")


def _mt_rows(pairs: list[Pair], src: str, tgt: str) -> list[dict]:
    return [{"id": p.id, "task": "mt", "direction": f"{src}-{tgt}", "src_lang": src, "tgt_lang": tgt,
             "src": p.src, "tgt": p.tgt, "prompt": translation_prompt(p.src, src, tgt),
             "completion": translation_completion(p.tgt)} for p in pairs]


def _pos_rows(sentences: list[TaggedSentence], direction: str) -> list[dict]:
    src, _, tgt = direction.partition("-")  # training rows: "en", no target language
    return [{"id": s.id, "task": "pos", "direction": direction, "src_lang": src, "tgt_lang": tgt,
             "src": " ".join(s.words), "tgt": " ".join(s.tags), "words": list(s.words), "tags": list(s.tags),
             "prompt": tagging_prompt(s.words), "completion": tagging_completion(s.tags)} for s in sentences]


def _test_pairs(task: MtTask, src: str, tgt: str, ddir: Path | None, base_dir: Path) -> tuple[list[Pair], str]:
    """The first test source whose data is present (e.g. PUD, else held-out Bible books)."""
    missing = []
    for source in task.test:
        try:
            return load_pairs(source, src, tgt, "test", ddir, base_dir), source.source
        except DataMissing as e:
            missing.append(str(e))
    raise UserError(missing[0] if len(missing) == 1 else "no test source has data: " + " | ".join(missing))


def _mt(cfg: ExperimentConfig, ddir: Path | None, base_dir: Path, train_rows, test_rows, manifest) -> None:
    task = cfg.tasks.mt
    for direction in task.directions:
        src, tgt = direction.split("-")
        try:
            train_all = load_pairs(task.train, src, tgt, "train", ddir, base_dir)
        except DataMissing as e:
            raise UserError(str(e)) from None
        test_all, test_source = _test_pairs(task, src, tgt, ddir, base_dir)
        train = select(train_all, cfg.data.budget, cfg.seed, f"data.budget (mt {direction} training pairs)")
        test = select(test_all, cfg.data.test_size, cfg.seed, f"data.test_size (mt {direction} {test_source} pairs)")
        check_disjoint(train, test)
        train_rows += _mt_rows(train, src, tgt)
        test_rows += _mt_rows(test, src, tgt)
        manifest[f"mt {direction}"] = {"train_source": task.train.source, "train_available": len(train_all),
                                       "train_used": len(train), "test_source": test_source,
                                       "test_available": len(test_all), "test_used": len(test)}


def _pos(cfg: ExperimentConfig, ddir: Path | None, train_rows, test_rows, manifest) -> None:
    """One English EWT training budget serves every test language: the transfer is zero-shot."""
    try:
        train_all = load_tagged("en", "train", ddir)
        train = select(train_all, cfg.data.budget, cfg.seed, "data.budget (pos EWT training sentences)")
        train_rows += _pos_rows(train, "en")
        for direction in cfg.tasks.pos.directions:
            test_all = load_tagged(direction.split("-")[1], "test", ddir)
            test = select(test_all, cfg.data.test_size, cfg.seed, f"data.test_size (pos {direction} PUD sentences)")
            test_rows += _pos_rows(test, direction)
            manifest[f"pos {direction}"] = {"train_source": "ud-ewt", "train_available": len(train_all),
                                            "train_used": len(train), "test_source": "ud-pud",
                                            "test_available": len(test_all), "test_used": len(test)}
    except DataMissing as e:
        raise UserError(str(e)) from None


def _knowledge(cfg: ExperimentConfig, ddir: Path | None, test_rows, manifest) -> None:
    """Test items only (the task trains nothing): the same item ids in every language."""
    task = cfg.tasks.knowledge
    for name in task.sets:
        by_lang = {}
        for lang in task.langs:
            try:
                by_lang[lang] = knowledge.load(name, lang, ddir, cfg.seed)
            except DataMissing as e:
                if lang == "en" or ddir is None:   # English is the reference; no data directory: say so
                    raise UserError(str(e)) from None
                print(f"[prepare] knowledge {name}: no {lang} items ({e}); {lang} is left out of this set", flush=True)
                manifest[f"knowledge {name}-{lang}"] = {"test_source": name, "missing": str(e)}
        chosen = knowledge.select_shared(by_lang, cfg.data.test_size, cfg.seed, f"knowledge {name}")
        for lang, questions in chosen.items():
            test_rows += [{"id": q.id, "task": "knowledge", "direction": f"{name}-{lang}", "src_lang": lang,
                           "tgt_lang": lang, "src": q.question, "tgt": q.options[q.label],
                           "options": list(q.options), "label": q.label,
                           "prompt": letter_prompt(q.question, q.options) if task.scoring == "letter"
                           else question_prompt(q.question),
                           "completions": [answer_completion(o) for o in q.options]} for q in questions]
            manifest[f"knowledge {name}-{lang}"] = {"test_source": name, "test_available": len(by_lang[lang]),
                                                   "test_used": len(questions)}


def _conductivity(cfg: ExperimentConfig, ddir: Path | None, test_rows, manifest) -> dict[str, list[dict]]:
    """Each language's fictional-facts training rows (returned) and its gate and XRR test items."""
    task = cfg.tasks.conductivity
    train = {}
    for lang in task.langs:
        try:
            rows, items, manifest[f"conductivity {lang}"] = fictional.load(ddir, lang, task.places, task.paraphrases,
                                                                            cfg.seed)
        except DataMissing as e:
            raise UserError(str(e)) from None
        train[lang] = [{"id": r["id"], "task": "conductivity", "fact": r["fact"],
                        "prompt": question_prompt(r["instruction"] + (f"\n{r['input']}" if r["input"] else "")),
                        "completion": answer_completion(r["answer"])} for r in rows]
        test_rows += [{"id": i.id, "task": "conductivity", "direction": f"fictional-{lang}", "subset": i.subset,
                       "src_lang": "en", "tgt_lang": lang, "src": i.question, "tgt": i.expected,
                       "prompt": question_prompt(i.question)} for i in items]
    return train


def prepare(cfg: ExperimentConfig, config_path: Path) -> Path:
    """Validate everything, then write <output_dir>/<name>/{config.yaml, data/*.jsonl}. Returns the run dir."""
    out = run_dir(cfg)
    _check_writable(out)
    existing = out / "config.yaml"
    if existing.is_file():
        from core.config import load_config

        old = load_config(existing)
        if old.hash() != cfg.hash():
            raise UserError(f"{out} holds a run of a different config (hash {old.hash()} != {cfg.hash()}); "
                            f"set name=... or remove the directory")
    model_path = resolve(cfg.model.name)
    for arm in cfg.arms:
        for field in ("task_model", "model"):
            if getattr(arm, field, None):
                try:
                    resolve(getattr(arm, field))
                except UserError as e:
                    raise UserError(f"arms: {arm.name}: {field}: {e}") from None
    if not cfg.deepspeed.path().is_file() and cfg.trained_arms():
        raise UserError(f"deepspeed.config: {cfg.deepspeed.path()} not found")
    ddir = data_dir(cfg)
    train_rows, test_rows, manifest = [], [], {}
    if cfg.tasks.mt:
        _mt(cfg, ddir, config_path.resolve().parent, train_rows, test_rows, manifest)
    if cfg.tasks.pos:
        _pos(cfg, ddir, train_rows, test_rows, manifest)
    if cfg.tasks.knowledge:
        _knowledge(cfg, ddir, test_rows, manifest)
    fictional_rows = _conductivity(cfg, ddir, test_rows, manifest) if cfg.tasks.conductivity else {}
    tok = load_tokenizer(model_path, cfg.model.trust_remote_code)
    # prompt + completion + the EOS the trainer appends: what SFT trains on, per example
    lengths = [len(ids) + 1 for ids in tok([r["prompt"] + r["completion"] for r in train_rows]).input_ids] \
        if train_rows else []
    _check_lengths(cfg, train_rows, lengths)
    for lang, rows in fictional_rows.items():
        sizes = [len(ids) + 1 for ids in tok([r["prompt"] + r["completion"] for r in rows]).input_ids]
        if max(sizes) > cfg.tasks.conductivity.max_length:
            raise UserError(f"tasks.conductivity.max_length: {rows[sizes.index(max(sizes))]['id']} is {max(sizes)} "
                            f"tokens, over {cfg.tasks.conductivity.max_length}")
    # unset, the pretraining arms get what SFT trains on: every labelled example, once per epoch
    streams = _pretraining_streams(cfg, tok, cfg.data.token_budget or cfg.sft_epochs() * sum(lengths),
                                   config_path.resolve().parent)

    _check_ranks(cfg, len(train_rows), {name: len(stream.rows) for name, stream in streams.items()})
    for arm_name, stream in streams.items():
        atomic_write_jsonl(out / "data" / f"pretrain-{arm_name}.jsonl", stream.rows)
        manifest[f"pretrain {arm_name}"] = stream.manifest()
    for lang, rows in fictional_rows.items():
        atomic_write_jsonl(out / "data" / f"fictional-{lang}.jsonl", rows)
    atomic_write_jsonl(out / "data" / "train.jsonl", train_rows)
    atomic_write_jsonl(out / "data" / "test.jsonl", test_rows)
    atomic_write_json(out / "data" / "manifest.json", manifest)
    atomic_write_text(out / "config.yaml", dump_config(cfg))
    atomic_write_text(out / "config.hash", cfg.hash() + "\n")
    return out


def _pretraining_streams(cfg: ExperimentConfig, tok, budget: int, base_dir: Path) -> dict[str, mixing.Stream]:
    """Each pretraining arm's sequence of `budget` tokens (data.token_budget, else the labelled examples' tokens:
    one SFT epoch)."""
    if budget == 0 and any(isinstance(a, PretrainArm) for a in cfg.arms):
        raise UserError("data.token_budget: no labelled training examples to derive it from; set it")
    streams = {}
    for i, arm in enumerate(cfg.arms):
        if not isinstance(arm, PretrainArm):
            continue
        what = f"arms.{i}.text ({arm.name})"
        try:
            docs = {lang: documents(arm.text, lang, base_dir) for lang in arm.langs}
        except UserError as e:
            raise UserError(f"{what}: {e}") from None
        print(f"[prepare] {arm.name}: {budget:,} training tokens from "
              + ", ".join(f"{lang} ({len(d):,} documents)" for lang, d in docs.items()), flush=True)
        streams[arm.name] = mixing.build(docs, tok, budget, arm.max_length, cfg.seed, arm.alpha, arm.probabilities, what)
        if any(p > 1 for p in streams[arm.name].passes.values()):
            print(f"[prepare] {arm.name}: the budget repeats text ({streams[arm.name].passes} passes)", flush=True)
    return streams


def _check_ranks(cfg: ExperimentConfig, n_rows: int, n_sequences: dict[str, int]) -> None:
    """Every rank must get the same number of non-empty micro-batches (train/sampler.py): said now, not after
    model loading inside DeepSpeed."""
    for arm in cfg.trained_arms():
        n = n_sequences.get(cfg.family(arm.name), n_rows)
        try:
            round_sizes(n, arm.batch_size, cfg.deepspeed.num_gpus)
        except ValueError as e:
            raise UserError(f"arms: {arm.name}: batch_size: {e}") from None


def _check_lengths(cfg: ExperimentConfig, rows: list[dict], lengths: list[int]) -> None:
    """Examples longer than an arm's max_length are an error: truncating them would silently shrink the budget."""
    arms = [a for a in cfg.trained_arms() if a.method in ("sft", "lora")]
    if not arms or not rows:
        return
    limit = min(a.max_length for a in arms)
    longest = max(range(len(rows)), key=lengths.__getitem__)
    if lengths[longest] > limit:
        raise UserError(f"data: example {rows[longest]['id']} is {lengths[longest]} tokens, over max_length={limit}; "
                        f"raise the arms' max_length or use shorter data")
