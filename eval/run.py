"""Evaluation stage: every arm on every direction's test set, from the files earlier stages wrote.

Reads `config.yaml`, `data/*.jsonl` and `checkpoints/<arm>/` of a run directory; writes one result record
per (arm, task, direction) to `results/` and gathers them into `results.jsonl`. A record already written
for the same weights and config is kept (a crashed evaluation resumes where it stopped).
"""
from __future__ import annotations

import json
import time
from pathlib import Path

from align import priors as prior_sources
from core import checkpoints
from core.checkpoints import weights_hash
from core.config import TRAINED, BaseArm, ExperimentConfig, LoraArm, PretrainArm, PrettyArm, SftArm
from core.errors import UserError
from core.io import atomic_write_json, atomic_write_jsonl, git_revision, read_jsonl, sha256_file
from core.ledger import Cost
from core.models import load_model, load_tokenizer, resolve
from core.provenance import PROTOCOL, is_current, protocol_of, stamp
from eval.conductivity import MEASURED, score_conductivity
from eval.generate import Generation, generate
from eval.knowledge import (answer_text, best_options, letter_picks, option_scores, score_choices,
                            scoring_signature)
from eval.mt import score_translations
from eval.pos import TagPairs, score_references
from eval.records import TRAINING_FIELDS


def _train_record(run_dir: Path, arm_name: str) -> dict:
    """The arm's train.json, its weights verified against the hash it records."""
    path = run_dir / "checkpoints" / arm_name / "train.json"
    if not path.is_file():
        raise UserError(f"{path}: arm {arm_name!r} has no complete checkpoint; run its training first")
    rec = checkpoints.read_record(path)
    if not is_current(rec):
        raise UserError(f"{path}: checkpoint written under protocol {protocol_of(rec)}, this code computes protocol "
                        f"{PROTOCOL}; run the train stage (it trains the arm again)")
    checkpoints.verify(rec, path)
    return rec


def _read_record(path: Path) -> dict | None:
    """A result record, or None (with a message) when the file does not parse: it is evaluated again."""
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(record, dict) or not isinstance(record.get("weights"), dict):
            raise ValueError("not a result record")
        return record
    except (OSError, UnicodeDecodeError, ValueError) as e:
        print(f"[eval] {path}: unreadable record ({e}): evaluating again", flush=True)
        return None


def unknown_training_cost() -> Cost:
    """A model whose training is not known here (no train.json beside it): null, never zero (fairness rule 3)."""
    return Cost(**dict.fromkeys(TRAINING_FIELDS))


def _record_beside(path: str) -> dict:
    """train.json of a checkpoint directory of some run ({} for any other model); resolve() verified the
    weights against it."""
    record = Path(path).parent / "train.json"
    return checkpoints.read_record(record) if record.is_file() else {}


class Evaluator:
    """Evaluates on the test split (records in the run directory) or, for choices made before the test, on the
    dev split (records under <run dir>/dev/, a report of their own)."""

    def __init__(self, cfg: ExperimentConfig, run_dir: Path, split: str = "test"):
        self.cfg, self.run_dir, self.split = cfg, run_dir, split
        self.out = run_dir if split == "test" else run_dir / split
        self.base_path = resolve(cfg.model.name)
        self.tok = load_tokenizer(self.base_path, cfg.model.trust_remote_code)
        self._base_model = None
        self._trained: dict[str, tuple] = {}        # weights path -> (model, tokenizer, weights, cost)
        self._tokens_by_lang: dict[str, dict] = {}   # weights path -> training tokens by language
        self._warm: set[int] = set()                  # models that have run their warm-up batch
        items = run_dir / "data" / f"{split}.jsonl"
        if not items.is_file():
            raise UserError(f"{items}: no {split} items; run the prepare stage (./launch.sh run CONFIG --stage prepare)")
        self.test, self.data_sha256 = read_jsonl(items), sha256_file(items)
        # the budget's rows: what training arms and the frequent / dictionary priors are built from
        self.train_data_sha256 = sha256_file(run_dir / "data" / "train.jsonl")
        self.train = read_jsonl(run_dir / "data" / "train.jsonl")
        self.git_rev = git_revision()

    def _weights(self, path: str, **extra) -> dict:
        """What a record says about the weights it scored. `in_run`: a checkpoint of this run, found there again
        when the run directory has been moved or copied (its absolute path is the original's)."""
        resolved, root = Path(path).resolve(), self.run_dir.resolve()
        in_run = {"in_run": str(resolved.relative_to(root))} if resolved.is_relative_to(root) else {}
        return {"path": path, "sha256": weights_hash(path)} | in_run | extra

    @property
    def base_model(self):
        if self._base_model is None:
            self._base_model = load_model(self.base_path, self.cfg.model.dtype, self.cfg.model.trust_remote_code)
        return self._base_model

    def _load_trained(self, arm_name: str):
        """(model, tokenizer, weights, training cost) of one of this run's training arms."""
        rec = _train_record(self.run_dir, arm_name)
        return self._load(rec["model_dir"], rec)

    def _load_other(self, name: str):
        """A model from outside this run. A checkpoint of another run brings its training cost (train.json
        beside it); any other model's training cost is unknown here, and recorded as unknown (never as zero)."""
        path = resolve(name)
        model, tok, weights, cost = self._load(path, _record_beside(path))
        return model, tok, weights, self._outside_cost(path)

    def _outside_cost(self, path: str) -> Cost:
        """The training cost behind a model from outside this run: its train.json's, nothing for the experiment's
        own base model (every arm starts from it), else unknown."""
        if path == self.base_path:
            return Cost()
        rec = _record_beside(path)
        if rec.get("cost") and not is_current(rec):   # counted by another convention: not comparable
            print(f"[eval] {path}: its training cost was recorded under protocol {protocol_of(rec)}, this code "
                  f"counts by protocol {PROTOCOL}: treated as unknown", flush=True)
            return unknown_training_cost()
        return Cost.from_dict(rec["cost"]) if rec.get("cost") else unknown_training_cost()

    def _prior_model(self, arm: PrettyArm):
        """(model, tokenizer) of a model prior, loaded once (and before any clock starts)."""
        if arm.prior in ("sft", "lora"):
            return self._load_trained(arm.from_arm)[:2]
        path = resolve(arm.task_model)
        return self._load(path, _record_beside(path))[:2]

    def _warm_up(self, model, tok, prompts: list[str]) -> None:
        """One batch through each model before timing (first-call allocations, the newline-id table)."""
        if id(model) in self._warm:
            return
        generate(model, tok, prompts[: self.cfg.eval.batch_size], max_new_tokens=2,
                 batch_size=self.cfg.eval.batch_size, desc="warm-up")
        self._warm.add(id(model))

    def _training_seed(self, arm) -> int | None:
        """The seed of the training behind an arm's weights (a PreTTY arm's: its prior arm's); None without."""
        if getattr(arm, "from_arm", None):
            arm = self.cfg.arm(arm.from_arm)
        if arm.method not in TRAINED:
            return None
        return self.cfg.seed if arm.seed is None else arm.seed

    def _load(self, path: str, rec: dict):
        """Each checkpoint is loaded once, however many tasks, directions and prior arms use it; `rec` is its
        train.json (empty when there is none)."""
        if path not in self._trained:
            if rec.get("method") == "lora":
                base = rec.get("base_model") or self.base_path   # init_from: the adapter sits on another arm's model
                model = load_model(base, self.cfg.model.dtype, self.cfg.model.trust_remote_code, adapter=path)
                weights = self._weights(path, base=self._weights(base))
            else:
                model = load_model(path, self.cfg.model.dtype, self.cfg.model.trust_remote_code)
                weights = self._weights(path) if Path(path).is_dir() else {"path": path}   # a hub id has no files here
            self._trained[path] = (model, load_tokenizer(path, self.cfg.model.trust_remote_code), weights,
                                   rec.get("cost") or {})
            self._tokens_by_lang[path] = rec.get("tokens_by_lang") or {}
        model, tok, weights, cost = self._trained[path]
        return model, tok, weights, Cost.from_dict(cost)  # a fresh ledger: evaluation adds its own time to it

    def run(self, arm_names: list[str] | None = None) -> list[dict]:
        arms = [self.cfg.arm(n) for n in arm_names] if arm_names else self.cfg.arm_runs()
        self._verify(arms)
        for arm in arms:
            for task, direction in self.cfg.tasks.units():
                self.evaluate(arm, task, direction)
        return self.gather()

    def _verify(self, arms: list) -> None:
        """Every checkpoint these arms read is verified before anything is evaluated (or a record kept): damaged
        weights stop the stage with the file named, before any compute."""
        for arm in arms:
            if arm.method in TRAINED:
                _train_record(self.run_dir, arm.name)
            if getattr(arm, "from_arm", None):
                _train_record(self.run_dir, arm.from_arm)
            for outside in (getattr(arm, "model", None), getattr(arm, "task_model", None)):
                if outside:
                    resolve(outside)
            task = self.cfg.tasks.conductivity
            if task and arm.name in task.from_arms:
                for lang in task.langs:
                    if (self.run_dir / "checkpoints" / task.probe_name(arm.name, lang) / "train.json").is_file():
                        _train_record(self.run_dir, task.probe_name(arm.name, lang))

    def record_path(self, arm_name: str, task: str, direction: str) -> Path:
        return self.out / "results" / f"{arm_name}.{task}.{direction}.json"

    def evaluate(self, arm, task: str, direction: str) -> dict | None:
        path = self.record_path(arm.name, task, direction)
        if path.is_file():
            old = _read_record(path)
            if old is not None and not is_current(old):
                print(f"[eval] {arm.name} {task} {direction}: record written under protocol {protocol_of(old)}, "
                      f"this code computes protocol {PROTOCOL}: evaluating again", flush=True)
            elif old is not None and old.get("config_hash") == self.cfg.hash() and self._still_current(old) \
                    and old.get("data_sha256") == self.data_sha256 \
                    and old.get("train_data_sha256") == self.train_data_sha256:
                print(f"[eval] {arm.name} {task} {direction}: kept {path}", flush=True)
                return old
        if isinstance(arm, PrettyArm) and arm.prior == "dictionary" and task != "mt":
            print(f"[eval] {arm.name} {task} {direction}: a word dictionary gives no prior for {task}, skipped", flush=True)
            return None
        if isinstance(arm, PrettyArm) and task == "knowledge":
            print(f"[eval] {arm.name} {task} {direction}: options are scored, not generated: no prior applies", flush=True)
            return None
        if task == "conductivity" and arm.name not in self.cfg.tasks.conductivity.from_arms:
            return None   # only the from_arms have a fine-tuned probe
        src, tgt = direction.split("-")
        items = [r for r in self.test if r["task"] == task and r["direction"] == direction]
        if not items:   # e.g. a knowledge set without this language
            print(f"[eval] {arm.name} {task} {direction}: no test items, skipped", flush=True)
            return None
        prompts = [r["prompt"] for r in items]
        refs = [r["tgt"] for r in items]
        prior, cost, model_priors, probe = None, Cost(), None, None
        # Loading, one-off tables and a warm-up batch happen before the clock starts (fairness rule 6): the
        # per-item time is what break-even charges a training-free arm on every item.
        if task == "conductivity":
            model, tok, weights, cost, probe = self._probe(arm, tgt)
        elif isinstance(arm, BaseArm) and arm.model:
            model, tok, weights, cost = self._load_other(arm.model)
        elif isinstance(arm, BaseArm):
            model, tok, weights = self.base_model, self.tok, self._weights(self.base_path)
        elif isinstance(arm, (SftArm, LoraArm, PretrainArm)):
            model, tok, weights, cost = self._load_trained(arm.name)
        elif isinstance(arm, PrettyArm):
            model, tok = self.base_model, self.tok
        else:
            raise UserError(f"arm {arm.name!r}: method {arm.method!r} has no evaluation")
        self._warm_up(model, tok, prompts)
        if isinstance(arm, PrettyArm) and arm.prior in ("sft", "lora", "task_model"):
            self._warm_up(*self._prior_model(arm), prompts)
        start = time.time()
        if isinstance(arm, PrettyArm):
            model_priors = self._priors(arm, task, direction, items)
            cost = model_priors.cost
            weights = self._weights(self.base_path, prior=model_priors.weights)
            prior = {"source": arm.prior, "k": arm.k, "from_arm": arm.from_arm, "note": model_priors.note,
                     "chars_mean": model_priors.chars_mean}
        desc = f"{arm.name} {task} {direction}"
        if task == "knowledge":
            knowledge = self.cfg.tasks.knowledge
            n_options = [len(r["options"]) for r in items]
            if knowledge.scoring == "letter":
                answers = generate(model, tok, prompts, max_new_tokens=4, batch_size=self.cfg.eval.batch_size, desc=desc)
                picks = letter_picks([g.text for g in answers], n_options)
            else:
                picks = best_options(option_scores(model, tok, prompts, [r["completions"] for r in items],
                                                   self.cfg.eval.batch_size, desc, knowledge.normalise or "tokens"))
            score = score_choices(picks, [r["label"] for r in items], n_options,
                                  scoring_signature(knowledge.scoring, knowledge.normalise))
            # answers and references as "B. Paris": equal exactly when the option index is, so the report's
            # intervals (from outputs and references) count the same items right as per_item.correct
            items = [r | {"tgt": answer_text(r["options"], r["label"])} for r in items]
            refs = [r["tgt"] for r in items]
            gens = [Generation([], [], answer_text(r["options"], p)) for r, p in zip(items, picks)]
        elif task == "conductivity":
            gens = generate(model, tok, prompts, max_new_tokens=self.cfg.tasks.conductivity.max_new_tokens,
                            batch_size=self.cfg.eval.batch_size, desc=desc)
        else:
            max_new = self.cfg.eval.max_new_tokens if task == "mt" else \
                self.cfg.tasks.pos.max_new_tokens(self.cfg.eval.pos_max_new_tokens)
            gens = generate(model, tok, prompts, model_priors.ids if model_priors else None, max_new_tokens=max_new,
                            batch_size=self.cfg.eval.batch_size, desc=desc)
        hyps = [g.text for g in gens]
        cost.eval_wall_s = time.time() - start
        if task == "mt":
            score = score_translations(hyps, refs, tgt)
        elif task == "pos":
            score = score_references(hyps, refs)   # as the report scores it: the references tell the format
        elif task == "conductivity":
            score = score_conductivity(hyps, items, self.cfg.tasks.conductivity.gate)
            probe["subsets"] = score["subsets"]
            # the interval and samples are XRR's: the X type-1 questions
            measured = [i for i, r in enumerate(items) if r["subset"] == MEASURED]
            items, gens = [items[i] for i in measured], [gens[i] for i in measured]
            hyps, refs = [hyps[i] for i in measured], [refs[i] for i in measured]
        record = {
            **stamp(self.cfg.model.dtype),
            "experiment": self.cfg.name, "arm": arm.name, "method": arm.method, "task": task, "src": src, "tgt": tgt,
            "family": self.cfg.family(arm.name), "seed": self._training_seed(arm), "budget": self.cfg.data.budget,
            "split": self.split, "data_sha256": self.data_sha256, "train_data_sha256": self.train_data_sha256,
            "metrics": score["metrics"], "signatures": score.get("signatures", {}), "n_items": len(items),
            # every output and reference: the report's bootstrap CIs and significance tests need them
            "per_item": score["per_item"] | {"output": hyps, "reference": refs} | {"id": [r["id"] for r in items]},
            "samples": [{"id": r["id"], "source": r["src"], "reference": r["tgt"], "output": g.text,
                         "prior": tok.decode(g.prior_ids) if g.prior_ids else ""}
                        for r, g in list(zip(items, gens))[: self.cfg.eval.samples]],
            "prior": prior, "weights": weights, "config_hash": self.cfg.hash(), "git_rev": self.git_rev,
            **({"probe": probe} if probe else {}),
            "cost": cost.as_dict(), "train_tokens_by_lang": self._tokens_by_lang.get(weights.get("path")) or None,
        }
        atomic_write_json(path, record)
        self._log(arm, task, direction, record, items, gens)
        print(f"[eval] {arm.name} {task} {direction}: " + ", ".join(f"{k}={v:.3g}" for k, v in score["metrics"].items()),
              flush=True)
        return record

    def _probe(self, arm, lang: str):
        """The conductivity probe of `arm` (its model fine-tuned on `lang`'s fictional facts) and the arm's own
        training cost: the probe's is a measurement's, kept apart in the record."""
        task = self.cfg.tasks.conductivity
        rec = _train_record(self.run_dir, task.probe_name(arm.name, lang))
        model, tok, weights, _ = self._load(rec["model_dir"], rec)
        if isinstance(arm, BaseArm):
            own = self._outside_cost(resolve(arm.model)) if arm.model else Cost()
        else:
            own = Cost.from_dict(_train_record(self.run_dir, arm.name)["cost"])
        probe = {"from_arm": arm.name, "places": task.places or "all", "paraphrases": task.paraphrases or "all",
                 "epochs": task.epochs, "gate": task.gate, "train_cost": rec["stage_cost"]}
        return model, tok, weights, own, probe

    def _still_current(self, old: dict) -> bool:
        """A kept record must describe the weights that are on disk now (a retrained arm is re-evaluated)."""
        w = old.get("weights") or {}
        for entry in (w, w.get("base") or {}, w.get("prior") or {}):
            path = self.run_dir / entry["in_run"] if entry.get("in_run") else entry.get("path")
            if path and (not Path(path).exists() or weights_hash(path) != entry.get("sha256")):
                return False
        return True

    def _priors(self, arm: PrettyArm, task: str, direction: str, items: list[dict]) -> prior_sources.Priors:
        # POS has one English training set for every test language; translation one per direction
        train = [r for r in self.train if r["task"] == task and (task != "mt" or r["direction"] == direction)]
        kwargs = {"prompts": [r["prompt"] for r in items], "sources": [r["src"] for r in items],
                  "src_lang": direction.split("-")[0], "train_targets": [r["tgt"] for r in train],
                  "train_prompts": [r["prompt"] for r in train],
                  "train_pairs": [(r["src"], r["tgt"]) for r in train], "batch_size": self.cfg.eval.batch_size,
                  "dictionary_path": arm.dictionary_path, "n_words": arm.n_words}
        if task == "pos" and self.cfg.tasks.pos.tag_format == "pairs":   # k counts tags, after copied words
            kwargs |= {"units": TagPairs, "words": [r["words"] for r in items]}
        if arm.prior in ("sft", "lora"):
            rec = _train_record(self.run_dir, arm.from_arm)
            kwargs |= {"train_cost": Cost.from_dict(rec["cost"]), "weights": self._weights(rec["model_dir"]),
                       "model_loader": lambda: self._load_trained(arm.from_arm)[:2]}
        elif arm.prior == "task_model":
            path = resolve(arm.task_model)
            # its train.json's cost where it has one, else unknown (never zero: fairness rule 3)
            kwargs |= {"train_cost": self._outside_cost(path),
                       "weights": self._weights(path) if Path(path).is_dir() else {"path": path},
                       "model_loader": lambda: self._prior_model(arm)}
        return prior_sources.SOURCES[arm.prior](self.tok, [r["tgt"] for r in items], arm.k, **kwargs)

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
            table.add_data(r["id"], r["src"], r["tgt"], self.tok.decode(g.prior_ids) if g.prior_ids else "", g.text,
                           *(values[i] for values in per_item.values()))
        metrics = {f"{task}/{direction}/{k}": v for k, v in record["metrics"].items()}
        run.log(metrics | {f"cost/{k}": v for k, v in record["cost"].items()} | {"samples": table})
        run.summary.update(metrics)
        run.finish()

    def gather(self) -> list[dict]:
        """results.jsonl = every record of this config, in config order (rewritten atomically)."""
        records = []
        for arm in self.cfg.arm_runs():
            for task, direction in self.cfg.tasks.units():
                path = self.record_path(arm.name, task, direction)
                if path.is_file() and (record := _read_record(path)) is not None:
                    records.append(record)
        atomic_write_jsonl(self.out / "results.jsonl", records)
        return records
