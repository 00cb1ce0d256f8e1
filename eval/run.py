"""Evaluation stage: every arm on every direction's test set, from the files earlier stages wrote.

Reads `config.yaml`, `data/*.jsonl` and `checkpoints/<arm>/` of a run directory; writes one result record
per (arm, task, direction) to `results/` and gathers them into `results.jsonl`. A record already written
for the same weights and config is kept (a crashed evaluation resumes where it stopped).
"""
from __future__ import annotations

import contextlib
import io
import json
import time
from dataclasses import asdict
from pathlib import Path

from align.demos import Prompted, choose_shots, few_shot_prompts
from align.nudge import nudge_generate
from align.priors import Priors
from core import checkpoints
from core.arms import BaseArm, IclArm, NudgeArm, PrettyArm, Shots, trained
from core.checkpoints import weights_hash
from core.config import ExperimentConfig
from core.decoding import generate, run_batches, track_batches, world
from core.errors import UserError
from core.io import atomic_write_json, atomic_write_jsonl, git_revision, read_jsonl, sha256_file
from core.ledger import Cost
from core.models import load_model, load_tokenizer, resolve
from core.provenance import PROTOCOL, is_current, protocol_of, stamp
from core.records import SCHEMA_VERSION, ResultRecord, TrainRecord
from core.rundir import RunDir
from eval.degeneration import degenerate
from eval.records import TRAINING_FIELDS
from tasks.base import Task


def _read_record(path: Path) -> dict | None:
    """A result record, or None (with a message) when the file does not parse: it is evaluated again."""
    try:
        record = ResultRecord.read(json.loads(path.read_text(encoding="utf-8")), str(path))
        if record.weights is None:
            raise ValueError("not a result record: no weights")
        return record.as_dict()
    except (OSError, UnicodeDecodeError, ValueError, UserError) as e:
        print(f"[eval] {path}: unreadable record ({e}): evaluating again", flush=True)
        return None


def _check_priors(priors: Priors, n_items: int, vocab: int, source: str) -> None:
    """A prior source's output, checked before decoding: one list of base-vocabulary ids per item."""
    if len(priors.ids) != n_items:
        raise UserError(f"prior source {source!r}: gave priors for {len(priors.ids)} of {n_items} items")
    bad = next((i for ids in priors.ids for i in ids if not (isinstance(i, int) and 0 <= i < vocab)), None)
    if bad is not None:
        raise UserError(f"prior source {source!r}: token id {bad!r} is not in the base model's vocabulary "
                        f"(0..{vocab - 1})")


def _nudge_field(arm: NudgeArm, outputs, nudged) -> dict:
    """Where the aligned model's tokens went: the share of all generated tokens, how many fall in the first
    1, 2, 3 positions (the prior-knowledge hypothesis: alignment changes how an answer starts), and a
    histogram of positions."""
    supplied = [p for x in nudged for p in x.supplied]
    tokens = sum(g.steps for g in outputs)   # every token decided, the one that stopped a row included
    histogram = [0] * (max(supplied) + 1 if supplied else 0)
    for p in supplied:
        histogram[p] += 1
    return {"threshold": arm.threshold, "from_arm": arm.from_arm, "task_model": arm.task_model,
            "tokens": tokens, "supplied": len(supplied), "share": len(supplied) / tokens if tokens else 0.0,
            "first": {str(n): sum(p < n for p in supplied) for n in (1, 2, 3)}, "histogram": histogram,
            # columns the aligned model caught up on beyond the prompts (its prefills' extra width)
            "aligned_positions_per_item": sum(x.aligned_positions for x in nudged) / max(len(nudged), 1)}


def unknown_training_cost() -> Cost:
    """A model whose training is not known here (no train.json beside it): null, never zero
    (fairness rule 3)."""
    return Cost(**dict.fromkeys(TRAINING_FIELDS))


def _record_beside(path: str) -> TrainRecord | None:
    """train.json of a checkpoint directory of some run (None for any other model); resolve() verified the
    weights against it."""
    record = checkpoints.record_beside(path)
    return checkpoints.read_record(record) if record.is_file() else None


class Evaluator:
    """Evaluates on the test split (records in the run directory) or, for choices made before the test, on the
    dev split (records under <run dir>/dev/, a report of their own)."""

    def __init__(self, cfg: ExperimentConfig, run_dir: Path, split: str = "test"):
        self.cfg, self.run_dir, self.split = cfg, run_dir, split
        self.dir = RunDir(run_dir, split)
        self.base_path = resolve(cfg.model.name)
        self.tok = load_tokenizer(self.base_path, cfg.model.trust_remote_code)
        self._base_model = None
        self._trained: dict[str, tuple] = {}        # weights path -> (model, tokenizer, weights, cost)
        self._tokens_by_lang: dict[str, dict] = {}   # weights path -> training tokens by language
        self._warm: set[int] = set()                  # models that have run their warm-up batch
        items = self.dir.rows(split)
        if not items.is_file():
            raise UserError(f"{items}: no {split} items; run the prepare stage "
                            "(./launch.sh run CONFIG --stage prepare)")
        self.test, self.data_sha256 = read_jsonl(items), sha256_file(items)
        # the budget's rows: what training arms and the frequent / dictionary priors are built from
        self.train_data_sha256 = sha256_file(self.dir.rows("train"))
        self.train = read_jsonl(self.dir.rows("train"))
        self.git_rev = git_revision()

    def _weights(self, path: str, **extra) -> dict:
        """What a record says about the weights it scored. `in_run`: a checkpoint of this run, found there
        again when the run directory has been moved or copied (its absolute path is the original's)."""
        resolved, root = Path(path).resolve(), self.run_dir.resolve()
        in_run = {"in_run": str(resolved.relative_to(root))} if resolved.is_relative_to(root) else {}
        return {"path": path, "sha256": weights_hash(path)} | in_run | extra

    @property
    def base_model(self):
        if self._base_model is None:
            self._base_model = load_model(self.base_path, self.cfg.model.dtype,
                                          self.cfg.model.trust_remote_code,
                                          attention=self.cfg.model.attention)
        return self._base_model

    def _load_trained(self, arm_name: str):
        """(model, tokenizer, weights, training cost) of one of this run's training arms."""
        rec = self.dir.trained(arm_name)
        return self._load(rec.model_dir, rec)

    def _load_other(self, name: str):
        """A model from outside this run. A checkpoint of another run brings its training cost (train.json
        beside it); any other model's training cost is unknown here, and recorded as unknown (never as
        zero)."""
        path = resolve(name)
        model, tok, weights, cost = self._load(path, _record_beside(path))
        return model, tok, weights, self._outside_cost(path)

    def _outside_cost(self, path: str) -> Cost:
        """The training cost behind a model from outside this run: its train.json's, nothing for the
        experiment's own base model (every arm starts from it), else unknown."""
        if path == self.base_path:
            return Cost()
        rec = _record_beside(path)
        if rec is None or not rec.cost:
            return unknown_training_cost()
        if not is_current(rec):   # counted by another convention: not comparable
            print(f"[eval] {path}: its training cost was recorded under protocol {protocol_of(rec)}, "
                  f"this code counts by protocol {PROTOCOL}: treated as unknown", flush=True)
            return unknown_training_cost()
        return Cost.from_dict(rec.cost)

    def _prior_model(self, arm: PrettyArm | NudgeArm):
        """(model, tokenizer) of a model prior or of the model a nudge arm takes tokens from, loaded once (and
        before any clock starts)."""
        if arm.from_arm is not None:
            return self._load_trained(arm.from_arm)[:2]
        path = resolve(arm.task_model)
        return self._load(path, _record_beside(path))[:2]

    def _aligned(self, arm: NudgeArm) -> tuple[Cost, dict]:
        """The training cost and weights of the model a nudge arm takes tokens from."""
        if arm.from_arm is not None:
            rec = self.dir.trained(arm.from_arm)
            return Cost.from_dict(rec.cost), self._weights(rec.model_dir)
        path = resolve(arm.task_model)
        return self._outside_cost(path), self._weights(path) if Path(path).is_dir() else {"path": path}

    def _warm_up(self, model, tok, prompts: list[str]) -> None:
        """One batch through each model before timing (first-call allocations, the newline-id table)."""
        if id(model) in self._warm:
            return
        # every rank warms its own model (local): no batches shared, none counted in the record
        generate(model, tok, prompts[: self.cfg.eval.batch_size], max_new_tokens=2,
                 batch_size=self.cfg.eval.batch_size, desc="warm-up", local=True)
        self._warm.add(id(model))

    def _training_seed(self, arm) -> int | None:
        """The seed of the training behind an arm's weights (a PreTTY arm's: its prior arm's); None
        without."""
        if getattr(arm, "from_arm", None):
            arm = self.cfg.arm(arm.from_arm)
        if not trained(arm.method):
            return None
        return self.cfg.seed if arm.seed is None else arm.seed

    def _load(self, path: str, rec: TrainRecord | None):
        """Each checkpoint is loaded once, however many tasks, directions and prior arms use it; `rec` is its
        train.json (None when there is none)."""
        if path not in self._trained:
            if rec is not None and rec.method == "lora":
                base = rec.base_model or self.base_path   # init_from: the adapter sits on another arm's model
                model = load_model(base, self.cfg.model.dtype, self.cfg.model.trust_remote_code, adapter=path,
                                   attention=self.cfg.model.attention)
                weights = self._weights(path, base=self._weights(base))
            else:
                model = load_model(path, self.cfg.model.dtype, self.cfg.model.trust_remote_code,
                                   attention=self.cfg.model.attention)
                # a hub id has no files here
                weights = self._weights(path) if Path(path).is_dir() else {"path": path}
            self._trained[path] = (model, load_tokenizer(path, self.cfg.model.trust_remote_code), weights,
                                   rec.cost if rec else {})
            self._tokens_by_lang[path] = rec.tokens_by_lang if rec else {}
        model, tok, weights, cost = self._trained[path]
        return model, tok, weights, Cost.from_dict(cost)  # a fresh ledger: evaluation adds its own time to it

    def run(self, arm_names: list[str] | None = None) -> list[dict]:
        arms = [self.cfg.arm(n) for n in arm_names] if arm_names else self.cfg.arm_runs()
        self._verify(arms)
        for arm in arms:
            for task in self.cfg.tasks_used():
                for unit in task.units():
                    self.evaluate(arm, task, unit)
        return self.gather()

    def pending(self) -> bool:
        """Whether any record is still to compute (the launcher starts evaluation ranks only then), every
        checkpoint verified first: damage stops the stage before any rank starts. Quiet: the ranks say what
        they keep."""
        arms = self.cfg.arm_runs()
        self._verify(arms)
        with contextlib.redirect_stdout(io.StringIO()):
            return any(self._due(arm, task, unit) for arm in arms for task in self.cfg.tasks_used()
                       for unit in task.units())

    def _due(self, arm, task: Task, unit: str) -> bool:
        """evaluate() would compute this record (not kept, not skipped, items to score)."""
        path = self.dir.result(arm.name, task.name, unit)
        if path.is_file() and self._kept(path, arm, task.name, unit) is not None:
            return False
        return self._skip(arm, task) is None and any(r["task"] == task.name and r["direction"] == unit
                                                     for r in self.test)

    def _nudge(self, arm: NudgeArm, model, tok, prompts: list[str], max_new_tokens: int, where: str):
        """nudge_generate's outputs and per-item counts, its batches (nudge_generate's own length order, so
        its own padding) shared among evaluation ranks and halved on running out of memory."""
        aligned = self._prior_model(arm)[0]
        inputs = [tok(p).input_ids for p in prompts]
        order = sorted(range(len(inputs)), key=lambda i: -len(inputs[i]))

        def batch(idx: list[int]) -> list:
            # one call per batch: nudge_generate sorts it as it would within the whole list, one batch
            gens, items = nudge_generate(model, aligned, tok, [prompts[i] for i in idx],
                                         threshold=arm.threshold, max_new_tokens=max_new_tokens,
                                         batch_size=len(idx), desc=where)
            return list(zip(gens, items))

        done = run_batches(order, self.cfg.eval.batch_size, batch, where)
        return [done[i][0] for i in range(len(prompts))], [done[i][1] for i in range(len(prompts))]

    def _verify(self, arms: list) -> None:
        """Every checkpoint these arms read is verified before anything is evaluated (or a record kept):
        damaged weights stop the stage with the file named, before any compute."""
        for arm in arms:
            if trained(arm.method):
                self.dir.trained(arm.name)
            if getattr(arm, "from_arm", None):
                self.dir.trained(arm.from_arm)
            for outside in (getattr(arm, "model", None), getattr(arm, "task_model", None)):
                if outside:
                    resolve(outside)
            for task in self.cfg.tasks_used():
                jobs = ({task.weights_job(arm, unit) for unit in task.units()}
                        if task.skip(arm) is None else ())
                for job in filter(None, jobs):
                    if self.dir.complete(job):
                        self.dir.trained(job)

    def evaluate(self, arm, task: Task, unit: str) -> dict | None:
        """One arm on one unit of one task: load the model, the task runs it, the task scores, the record is
        written."""
        path = self.dir.result(arm.name, task.name, unit)
        if path.is_file() and (old := self._kept(path, arm, task.name, unit)) is not None:
            return old
        where = f"{arm.name} {task.name} {unit}"
        if (why := self._skip(arm, task)) is not None:
            if why:
                print(f"[eval] {where}: {why}, skipped", flush=True)
            return None
        items = [r for r in self.test if r["task"] == task.name and r["direction"] == unit]
        if not items:   # e.g. a knowledge set without this language
            print(f"[eval] {where}: no test items, skipped", flush=True)
            return None
        prompts = [r["prompt"] for r in items]
        # Loading, one-off tables and a warm-up batch happen before the clock starts (fairness rule 6): the
        # per-item time is what break-even charges a training-free arm on every item.
        job, job_record = task.weights_job(arm, unit), None
        if job:
            job_record = self.dir.trained(job)
            model, tok, weights, _ = self._load(job_record.model_dir, job_record)
            cost = self._own_cost(arm)   # the measurement's training is kept apart, in the record's extra
        elif isinstance(arm, PrettyArm):
            model, tok, cost = self.base_model, self.tok, Cost()
        elif isinstance(arm, NudgeArm):
            cost, aligned_weights = self._aligned(arm)
            model, tok = self.base_model, self.tok
            weights = self._weights(self.base_path, aligned=aligned_weights)
        else:
            model, tok, weights, cost = self._arm_model(arm)
        self._warm_up(model, tok, prompts)
        if isinstance(arm, NudgeArm) or (isinstance(arm, PrettyArm) and arm.source.needs):
            self._warm_up(*self._prior_model(arm), prompts)
        batches, start = track_batches(), time.time()
        prior, priors, nudged, shown = None, None, None, None
        if isinstance(arm, Shots) and arm.shots:   # demonstrations are chosen and laid out per item: timed
            shown = self._demonstrations(arm, task, unit, items, tok)
        if isinstance(arm, PrettyArm):   # a model prior's source sees the zero-shot prompt
            priors = self._priors(arm, task, unit, items)
            _check_priors(priors, len(items), len(self.tok), arm.prior)
            cost = priors.cost
            weights = self._weights(self.base_path, prior=priors.weights)
            prior = {"source": arm.prior, "k": arm.k, "from_arm": arm.from_arm, "note": priors.note,
                     "chars_mean": priors.chars_mean, "deployable": arm.source.deployable}
        if isinstance(arm, NudgeArm):
            outputs, nudged = self._nudge(arm, model, tok, prompts, task.max_new_tokens(), where)
            # PreTTY's convention (align/priors.py): a call is a prefill of the other model's prompt, a step
            # one next-token distribution it computed for the item
            n = len(items)
            cost.extra_model_calls_per_item = sum(x.aligned_calls > 0 for x in nudged) / n
            cost.extra_decode_steps_per_item = sum(x.aligned_calls for x in nudged) / n
        else:
            outputs = task.run(model, tok, items, priors.ids if priors else None, where,
                               **({"prompts": shown.prompts} if shown else {}))
        # device-seconds, as training counts train_device_s: on one rank the wall time; on several, the work
        # outside the batches once plus every rank's batches (Batches.device_seconds): what break-even
        # charges per item, whatever the number of ranks
        cost.eval_wall_s = batches.device_seconds(time.time() - start)
        # every rank has every output: rank 0 alone scores (COMET once; so a task's score() must not call the
        # model: run() does), writes and logs
        if world()[0] != 0:
            return None
        if shown:
            cost.extra_prompt_tokens_per_item = sum(shown.extra_tokens) / len(items)
            # the budget's rows the demonstrations are drawn from: a trained arm's cost counts them already
            if cost.train_examples is not None:   # unknown stays unknown (fairness rule 3)
                cost.train_examples = max(cost.train_examples, len(task.budget_rows(self.train, unit)))
        scored = task.score(items, outputs, unit)
        if task.quality.key not in scored.metrics:   # a plugin's slip: said before a record lacks it
            raise UserError(f"task {task.name!r}: its score() gave no {task.quality.key!r} metric, the "
                            f"quality it declares (metrics: {', '.join(scored.metrics)})")
        items, outputs = scored.items, scored.outputs
        hyps, refs = [g.text for g in outputs], [r["tgt"] for r in items]
        per_item = dict(scored.per_item)
        if task.generates:   # how much of a quality gap is loops (eval/degeneration.py)
            lang = task.loop_language(unit)
            per_item["degenerate"] = [degenerate(g.text, g.hit_limit, lang) for g in outputs]
            scored.metrics["degenerate_rate"] = sum(per_item["degenerate"]) / max(len(outputs), 1)
            # the same test on the references: what the rate reads when nothing loops (fairness rule 7)
            scored.metrics["reference_degenerate_rate"] = (
                sum(degenerate(ref, False, lang) for ref in refs) / max(len(refs), 1))
        if nudged:
            per_item["nudged"] = [len(x.supplied) for x in nudged]
        if shown:   # which of the budget's rows each item was shown: "never the test item" can be checked
            per_item["shots"] = [[r["id"] for r in shots] for shots in shown.shown]
        src, tgt = unit.split("-")
        record = {
            **stamp(self.cfg.model.dtype, model), "schema_version": SCHEMA_VERSION,
            "experiment": self.cfg.name, "arm": arm.name, "method": arm.method, "task": task.name, "src": src,
            "tgt": tgt, "family": self.cfg.family(arm.name), "seed": self._training_seed(arm),
            "budget": self.cfg.data.budget, "split": self.split, "data_sha256": self.data_sha256,
            "train_data_sha256": self.train_data_sha256, "metrics": scored.metrics,
            "quality": asdict(task.quality),   # what the report judges it by, without the task's module
            "signatures": scored.signatures, "n_items": len(items),
            # every output and reference: the report's bootstrap CIs and significance tests need them
            "per_item": (per_item | {"output": hyps, "reference": refs}
                         | {"id": [r["id"] for r in items]}),
            "samples": [{"id": r["id"], "source": r["src"], "reference": r["tgt"], "output": g.text,
                         "prior": tok.decode(g.prior_ids) if g.prior_ids else ""}
                        for r, g in list(zip(items, outputs))[: self.cfg.eval.samples]],
            "prior": prior, "weights": weights, "config_hash": self.cfg.hash(), "git_rev": self.git_rev,
            **({"icl": self._icl_field(arm, shown)} if shown else {}),
            **({"nudge": _nudge_field(arm, outputs, nudged)} if nudged is not None else {}),
            **({"decoding": self.cfg.eval.decoding()} if task.generates and self.cfg.eval.decoding() else {}),
            **task.record_extra(arm, unit, job_record, scored),
            "cost": cost.as_dict(), "eval_batching": batches.as_record(self.cfg.eval.batch_size, world()[1]),
            "train_tokens_by_lang": self._tokens_by_lang.get(weights.get("path")) or None,
        }
        record = ResultRecord.model_validate(record).as_dict()   # the reader's schema, checked on writing
        atomic_write_json(path, record)
        self._log(arm, task.name, unit, record, items, outputs)
        print(f"[eval] {where}: " + ", ".join(f"{k}={v:.3g}" for k, v in scored.metrics.items()), flush=True)
        return record

    def _kept(self, path: Path, arm, task: str, unit: str) -> dict | None:
        """The record already written, when it is of this protocol, config, data and the weights on disk."""
        old = _read_record(path)
        if old is not None and not is_current(old):
            print(f"[eval] {arm.name} {task} {unit}: record written under protocol {protocol_of(old)}, "
                  f"this code computes protocol {PROTOCOL}: evaluating again", flush=True)
        elif old is not None and old.get("config_hash") == self.cfg.hash() and self._still_current(old) \
                and old.get("data_sha256") == self.data_sha256 \
                and old.get("train_data_sha256") == self.train_data_sha256:
            print(f"[eval] {arm.name} {task} {unit}: kept {path}", flush=True)
            return old
        return None

    @staticmethod
    def _skip(arm, task: Task) -> str | None:
        """Why an arm has no record of this task (None: it has one; "": quietly)."""
        if isinstance(arm, (PrettyArm, NudgeArm)) and not task.generates:
            return "options are scored, not generated: no prior applies"
        if isinstance(arm, IclArm) and not task.generates:
            return "options are scored, not generated: demonstrations are for generating tasks"
        if isinstance(arm, PrettyArm) and arm.source.tasks is not None and task.name not in arm.source.tasks:
            return f"a {arm.prior} prior gives no prior for {task.name}"
        return task.skip(arm)

    def _arm_model(self, arm):
        """(model, tokenizer, weights, training cost) of an arm evaluated with its own weights."""
        if isinstance(arm, BaseArm) and arm.model:
            return self._load_other(arm.model)
        if isinstance(arm, BaseArm) or (isinstance(arm, IclArm) and arm.from_arm is None):
            return self.base_model, self.tok, self._weights(self.base_path), Cost()
        if isinstance(arm, IclArm):   # a trained model prompted with demonstrations
            return self._load_trained(arm.from_arm)
        if trained(arm.method):
            return self._load_trained(arm.name)
        raise UserError(f"arm {arm.name!r}: method {arm.method!r} has no evaluation")

    def _own_cost(self, arm) -> Cost:
        """An arm's own training cost, when a task evaluates a model trained from it (a probe)."""
        if isinstance(arm, BaseArm):
            return self._outside_cost(resolve(arm.model)) if arm.model else Cost()
        return Cost.from_dict(self.dir.trained(arm.name).cost)

    def _still_current(self, old: dict) -> bool:
        """A kept record must describe the weights that are on disk now (a retrained arm is re-evaluated)."""
        w = old.get("weights") or {}
        for entry in (w, w.get("base") or {}, w.get("prior") or {}, w.get("aligned") or {}):
            path = self.run_dir / entry["in_run"] if entry.get("in_run") else entry.get("path")
            if path and (not Path(path).exists() or weights_hash(path) != entry.get("sha256")):
                return False
        return True

    def _demonstrations(self, arm: Shots, task: Task, unit: str, items: list[dict], tok) -> Prompted:
        """Each item's few-shot prompt, its shots drawn from the budget's rows of this task and unit."""
        pool = task.budget_rows(self.train, unit)
        chosen = choose_shots(pool, items, arm.shots, arm.selection, self.cfg.seed, unit.split("-")[0])
        return few_shot_prompts(task, tok, items, chosen, arm.prompt_bound)

    @staticmethod
    def _icl_field(arm: Shots, shown: Prompted) -> dict:
        n = max(len(shown.shots_used), 1)
        return {"shots": arm.shots, "select": arm.selection, "max_prompt_tokens": arm.prompt_bound,
                "shots_used_mean": sum(shown.shots_used) / n, "dropped": shown.dropped,
                "from_arm": getattr(arm, "from_arm", None) if isinstance(arm, IclArm) else None}

    def _priors(self, arm: PrettyArm, task: Task, unit: str, items: list[dict]) -> Priors:
        train = task.budget_rows(self.train, unit)
        inputs = {"prompts": [r["prompt"] for r in items], "sources": [r["src"] for r in items],
                  "src_lang": unit.split("-")[0], "train_targets": [r["tgt"] for r in train],
                  "train_prompts": [r["prompt"] for r in train],
                  "train_pairs": [(r["src"], r["tgt"]) for r in train],
                  "batch_size": self.cfg.eval.batch_size,
                  "dictionary_path": arm.dictionary_path, "n_words": arm.n_words} | task.prior_options(items)
        if arm.source.needs == "arm":
            rec = self.dir.trained(arm.from_arm)
            inputs |= {"train_cost": Cost.from_dict(rec.cost), "weights": self._weights(rec.model_dir),
                       "model_loader": lambda: self._load_trained(arm.from_arm)[:2]}
        elif arm.source.needs == "model":
            path = resolve(arm.task_model)
            # its train.json's cost where it has one, else unknown (never zero: fairness rule 3)
            inputs |= {"train_cost": self._outside_cost(path),
                       "weights": self._weights(path) if Path(path).is_dir() else {"path": path},
                       "model_loader": lambda: self._prior_model(arm)}
        return arm.source.build(self.tok, [r["tgt"] for r in items], arm.k, **inputs)

    def _log(self, arm, task: str, direction: str, record: dict, items: list[dict], gens) -> None:
        if self.cfg.wandb.mode == "disabled":
            return
        from core.tracking import init_run
        import wandb

        name = f"{arm.name}-{task}-{direction}" + ("" if self.split == "test" else f"-{self.split}")
        run = init_run(self.cfg, self.run_dir, name, "eval",
                       config={"arm": arm.model_dump(mode="json"), "task": task, "direction": direction,
                               "config_hash": self.cfg.hash(), "weights": record["weights"]})
        per_item = {k: v for k, v in record["per_item"].items() if k not in ("output", "reference", "id")}
        table = wandb.Table(columns=["id", "source", "reference", "prior", "output", *per_item])
        for i, (r, g) in enumerate(zip(items, gens)):
            table.add_data(r["id"], r["src"], r["tgt"], self.tok.decode(g.prior_ids) if g.prior_ids else "",
                           g.text, *(values[i] for values in per_item.values()))
        metrics = {f"{task}/{direction}/{k}": v for k, v in record["metrics"].items()}
        run.log(metrics | {f"cost/{k}": v for k, v in record["cost"].items()} | {"samples": table})
        run.summary.update(metrics)
        run.finish()

    def gather(self) -> list[dict]:
        """results.jsonl = every record of this config, in config order (rewritten atomically; by rank 0
        alone)."""
        if world()[0] != 0:
            return []
        records = []
        for arm in self.cfg.arm_runs():
            for task, unit in self.cfg.units():
                path = self.dir.result(arm.name, task, unit)
                if path.is_file() and (record := _read_record(path)) is not None:
                    records.append(record)
        atomic_write_jsonl(self.dir.results, records)
        return records
