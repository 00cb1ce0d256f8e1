"""First stage: config -> run directory with the resolved config and the budgeted data.

Everything that can be wrong with the input is checked here, before any compute and before anything is
written: the model, the data directory, every data line, the budget, the output directory.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from align.lexicon import read_dictionary
from core.config import REPO, ExperimentConfig, MtTask, PretrainArm, dump_config
from core.data import fictional, knowledge, mixing
from core.data.decontaminate import Index, decontaminate
from core.data.mono import bible_held_out, documents
from core.data.budget import check_disjoint, round_sizes, select
from core.data.parallel import Pair, load_pairs
from core.data.ud import TaggedSentence, load_tagged
from core.errors import DataMissing, UserError
from core.io import atomic_write_json, atomic_write_jsonl, atomic_write_text, check_writable
from core.lock import acquire
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


def _mt_rows(pairs: list[Pair], src: str, tgt: str) -> list[dict]:
    return [{"id": p.id, "task": "mt", "direction": f"{src}-{tgt}", "src_lang": src, "tgt_lang": tgt,
             "src": p.src, "tgt": p.tgt, "prompt": translation_prompt(p.src, src, tgt),
             "completion": translation_completion(p.tgt)} for p in pairs]


def _pos_rows(sentences: list[TaggedSentence], direction: str, fmt: str) -> list[dict]:
    """The reference (`tgt`) is the answer as trained on, which also tells the report the format."""
    from eval.pos import gold_of   # the scorer's reading of a pair: every word must survive it

    src, _, tgt = direction.partition("-")  # training rows: "en", no target language
    rows = []
    for s in sentences:
        completion = tagging_completion(s.words, s.tags, fmt)
        if fmt == "pairs" and gold_of(completion) != (list(s.words), list(s.tags)):
            raise UserError(f"{s.id}: a word cannot be read back from its word/TAG pair: {completion.strip()!r}")
        rows.append({"id": s.id, "task": "pos", "direction": direction, "src_lang": src, "tgt_lang": tgt,
                     "src": " ".join(s.words), "tgt": completion.strip(), "words": list(s.words),
                     "tags": list(s.tags), "prompt": tagging_prompt(s.words, fmt), "completion": completion})
    return rows


def _test_pairs(task: MtTask, src: str, tgt: str, ddir: Path | None, base_dir: Path) -> tuple[list[Pair], str]:
    """The first test source whose data is present (e.g. PUD, else held-out Bible books)."""
    missing = []
    for source in task.test:
        try:
            return load_pairs(source, src, tgt, "test", ddir, base_dir), source.source
        except DataMissing as e:
            missing.append(str(e))
    raise UserError(missing[0] if len(missing) == 1 else "no test source has data: " + " | ".join(missing))


def _dev_size(cfg: ExperimentConfig, available: int) -> int:
    return min(cfg.data.dev_size or cfg.data.test_size, available)


def _mt(cfg: ExperimentConfig, ddir: Path | None, base_dir: Path, rows: dict[str, list], manifest) -> None:
    task = cfg.tasks.mt
    for direction in task.directions:
        src, tgt = direction.split("-")
        try:
            train_all = load_pairs(task.train, src, tgt, "train", ddir, base_dir)
        except DataMissing as e:
            raise UserError(str(e)) from None
        test_all, test_source = _test_pairs(task, src, tgt, ddir, base_dir)
        try:   # the training source's held-out dev part (a Bible book), for choices made before the test
            dev_all = load_pairs(task.train, src, tgt, "dev", ddir, base_dir)
        except DataMissing as e:
            print(f"[prepare] mt {direction}: no dev split ({e})", flush=True)
            dev_all = []
        train = select(train_all, cfg.data.budget, cfg.seed, f"data.budget (mt {direction} training pairs)")
        test = select(test_all, cfg.data.test_size, cfg.seed, f"data.test_size (mt {direction} {test_source} pairs)")
        dev = select(dev_all, _dev_size(cfg, len(dev_all)), cfg.seed, "data.dev_size") if dev_all else []
        check_disjoint(train, test)
        check_disjoint(train, dev)
        rows["train"] += _mt_rows(train, src, tgt)
        rows["test"] += _mt_rows(test, src, tgt)
        rows["dev"] += _mt_rows(dev, src, tgt)
        manifest[f"mt {direction}"] = {"train_source": task.train.source, "train_available": len(train_all),
                                       "train_used": len(train), "test_source": test_source,
                                       "test_available": len(test_all), "test_used": len(test),
                                       "dev_source": task.train.source if dev else None, "dev_used": len(dev)}


def _pos(cfg: ExperimentConfig, ddir: Path | None, rows: dict[str, list], manifest) -> None:
    """One English EWT training budget serves every test language: the transfer is zero-shot. Dev: English EWT
    dev sentences (PUD is test only), once per direction so that choices are made per direction as tested."""
    fmt = cfg.tasks.pos.tag_format
    try:
        train_all = load_tagged("en", "train", ddir)
        train = select(train_all, cfg.data.budget, cfg.seed, "data.budget (pos EWT training sentences)")
        rows["train"] += _pos_rows(train, "en", fmt)
        dev_all = load_tagged("en", "dev", ddir)
        dev = select(dev_all, _dev_size(cfg, len(dev_all)), cfg.seed, "data.dev_size")
        for direction in cfg.tasks.pos.directions:
            test_all = load_tagged(direction.split("-")[1], "test", ddir)
            test = select(test_all, cfg.data.test_size, cfg.seed, f"data.test_size (pos {direction} PUD sentences)")
            rows["test"] += _pos_rows(test, direction, fmt)
            rows["dev"] += _pos_rows(dev, direction, fmt)
            manifest[f"pos {direction}"] = {"train_source": "ud-ewt", "train_available": len(train_all),
                                            "train_used": len(train), "test_source": "ud-pud",
                                            "test_available": len(test_all), "test_used": len(test),
                                            "dev_source": "ud-ewt-dev", "dev_used": len(dev)}
    except DataMissing as e:
        raise UserError(str(e)) from None


def _knowledge(cfg: ExperimentConfig, ddir: Path | None, rows: dict[str, list], manifest) -> None:
    """Test and dev items (the task trains nothing): the same item ids in every language."""
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
        chosen, dev = knowledge.select_shared_splits(by_lang, cfg.data.test_size, cfg.seed, f"knowledge {name}",
                                                     cfg.data.dev_size)
        for lang in chosen:
            rows["dev"] += _question_rows(task, name, lang, dev.get(lang, []))
            rows["test"] += _question_rows(task, name, lang, chosen[lang])
            manifest[f"knowledge {name}-{lang}"] = {"test_source": name, "test_available": len(by_lang[lang]),
                                                   "test_used": len(chosen[lang]), "dev_used": len(dev.get(lang, []))}


def _question_rows(task, name: str, lang: str, questions) -> list[dict]:
    return [{"id": q.id, "task": "knowledge", "direction": f"{name}-{lang}", "src_lang": lang,
                           "tgt_lang": lang, "src": q.question, "tgt": q.options[q.label],
                           "options": list(q.options), "label": q.label,
                           "prompt": letter_prompt(q.question, q.options) if task.scoring == "letter"
                           else question_prompt(q.question),
                           "completions": [answer_completion(o) for o in q.options]} for q in questions]


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
    check_writable(out, "output_dir")
    existing = out / "config.yaml"
    if existing.is_file():
        from core.config import load_config

        old = load_config(existing)
        if old.hash() != cfg.hash():
            raise UserError(f"{out} holds a run of a different config (hash {old.hash()} != {cfg.hash()}); "
                            f"set name=... or remove the directory")
    model_path = resolve(cfg.model.name)
    for i, arm in enumerate(cfg.arms):   # files an arm names: checked now, not when the arm's turn comes
        for field, check in (("task_model", resolve), ("model", resolve), ("dictionary_path", read_dictionary)):
            if getattr(arm, field, None):
                try:
                    check(getattr(arm, field))
                except UserError as e:
                    raise UserError(f"arms.{i}.{field}: {e}") from None
    if cfg.trained_arms() or cfg.tasks.conductivity:
        _check_deepspeed(cfg.deepspeed.path())
        # the launcher runs in the repository root: a relative hostfile is read from there
        if cfg.deepspeed.hostfile and not (REPO / cfg.deepspeed.hostfile).is_file():
            raise UserError(f"deepspeed.hostfile: {REPO / cfg.deepspeed.hostfile} not found")
    ddir = data_dir(cfg)
    rows, manifest = {"train": [], "dev": [], "test": []}, {}
    if cfg.tasks.mt:
        _mt(cfg, ddir, config_path.resolve().parent, rows, manifest)
    if cfg.tasks.pos:
        _pos(cfg, ddir, rows, manifest)
    if cfg.tasks.knowledge:
        _knowledge(cfg, ddir, rows, manifest)
    fictional_rows = _conductivity(cfg, ddir, rows["test"], manifest) if cfg.tasks.conductivity else {}
    train_rows = rows["train"]
    tok = load_tokenizer(model_path, cfg.model.trust_remote_code)
    # prompt + completion + the EOS the trainer appends: what SFT trains on, per example
    lengths = [len(ids) + 1 for ids in tok([r["prompt"] + r["completion"] for r in train_rows]).input_ids] \
        if train_rows else []
    _check_lengths(cfg, train_rows, lengths)
    for lang, fact_rows in fictional_rows.items():   # not `rows`: that name holds the splits, used below
        sizes = [len(ids) + 1 for ids in tok([r["prompt"] + r["completion"] for r in fact_rows]).input_ids]
        if max(sizes) > cfg.tasks.conductivity.max_length:
            longest = fact_rows[sizes.index(max(sizes))]["id"]
            raise UserError(f"tasks.conductivity.max_length: {longest} is {max(sizes)} "
                            f"tokens, over {cfg.tasks.conductivity.max_length}")
    # unset, the pretraining arms get what SFT trains on: every labelled example, once per epoch
    streams = _pretraining_streams(cfg, tok, cfg.data.token_budget or cfg.sft_epochs() * sum(lengths),
                                   config_path.resolve().parent, rows["test"] + rows["dev"])

    _check_ranks(cfg, len(train_rows), {name: len(stream.rows) for name, stream in streams.items()})
    acquire(out)   # every check passed: from here on this process is the run directory's one writer
    for arm_name, stream in streams.items():
        atomic_write_jsonl(out / "data" / f"pretrain-{arm_name}.jsonl", stream.rows)
        manifest[f"pretrain {arm_name}"] = stream.manifest()
    for lang, fact_rows in fictional_rows.items():
        atomic_write_jsonl(out / "data" / f"fictional-{lang}.jsonl", fact_rows)
    atomic_write_jsonl(out / "data" / "train.jsonl", train_rows)
    atomic_write_jsonl(out / "data" / "dev.jsonl", rows["dev"])
    atomic_write_jsonl(out / "data" / "test.jsonl", rows["test"])
    atomic_write_json(out / "data" / "manifest.json", manifest)
    atomic_write_text(out / "config.yaml", dump_config(cfg))
    atomic_write_text(out / "config.hash", cfg.hash() + "\n")
    return out


def _pretraining_streams(cfg: ExperimentConfig, tok, budget: int, base_dir: Path,
                         held_rows: list[dict]) -> dict[str, mixing.Stream]:
    """Each pretraining arm's sequence of `budget` tokens (data.token_budget, else the labelled examples' tokens:
    one SFT epoch), from text without the MT test and dev books (and their parallels) and without any document
    sharing an n-gram with a test or dev row (``held_rows``)."""
    arms = [(i, arm) for i, arm in enumerate(cfg.arms) if isinstance(arm, PretrainArm)]
    if budget == 0 and arms:
        raise UserError("data.token_budget: no labelled training examples to derive it from; set it")
    held_books = bible_held_out([cfg.tasks.mt.train, *cfg.tasks.mt.test] if cfg.tasks.mt else [])
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
              + ", ".join(f"{lang} ({len(d):,} documents, {dropped['by_lang'][lang]['hits']} dropped: test/dev "
                          f"n-grams)" for lang, d in docs.items()), flush=True)
        streams[arm.name] = mixing.build(docs, tok, budget, arm.max_length, cfg.seed, arm.alpha, arm.probabilities, what)
        streams[arm.name].decontamination = dropped
        if any(p > 1 for p in streams[arm.name].passes.values()):
            print(f"[prepare] {arm.name}: the budget repeats text ({streams[arm.name].passes} passes)", flush=True)
    return streams


def _check_deepspeed(path: Path) -> None:
    try:
        ds = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"deepspeed.config: {path} not found") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise UserError(f"deepspeed.config: {path}: not valid JSON ({e})") from None
    if not isinstance(ds, dict):
        raise UserError(f"deepspeed.config: {path}: expected a JSON object, got {type(ds).__name__}")


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
