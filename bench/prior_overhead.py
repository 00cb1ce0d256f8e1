"""What PreTTY's priors cost at inference: wall time of prior + decoding against plain base decoding of the
same items, in one process, each measured `--repeats` times (the median counts).

    ./launch.sh bench prior_overhead [--model gemma-3-270m] [--task-model runs/demo/checkpoints/sft/model]

Targets (issue 3): lexical priors (dictionary, frequent, oracle) <= 1.05 x base; model priors <= 1.30 x base.
Model loading is not timed: a deployed system loads its models once.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from align import priors  # noqa: E402
from core.data.budget import select  # noqa: E402
from core.data.parallel import BibleSource, PudSource, load_pairs  # noqa: E402
from core.errors import DataMissing  # noqa: E402
from core.ledger import Cost  # noqa: E402
from core.models import load_model, load_tokenizer, resolve  # noqa: E402
from core.prompts import translation_prompt  # noqa: E402
from core.decoding import generate  # noqa: E402


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="gemma-3-270m")
    p.add_argument("--task-model", help="checkpoint for the model prior (default: none, model prior skipped)")
    p.add_argument("--data-dir", default=None, help="data directory with UD PUD (else held-out Bible verses)")
    p.add_argument("--n", type=int, default=40, help="test items")
    p.add_argument("--k", type=int, default=1)
    p.add_argument("--batch-size", type=int, default=10)
    p.add_argument("--max-new-tokens", type=int, default=64)
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args(argv)

    path = resolve(args.model)
    tok, model = load_tokenizer(path), load_model(path, "float32")
    try:
        test = load_pairs(PudSource(source="pud"), "en", "de", "test",
                          Path(args.data_dir) if args.data_dir else None)
    except DataMissing:
        test = load_pairs(BibleSource(source="bible"), "en", "de", "test", None)
    train = select(load_pairs(BibleSource(source="bible"), "en", "de", "train", None), 256, 0, "train")
    items = select(test, args.n, 0, "test")
    prompts = [translation_prompt(x.src, "en", "de") for x in items]
    refs = [x.tgt for x in items]
    kwargs = {"prompts": prompts, "sources": [x.src for x in items], "src_lang": "en",
              "train_targets": [x.tgt for x in train], "train_pairs": [(x.src, x.tgt) for x in train],
              "batch_size": args.batch_size}
    sources = {name: (lambda name=name: priors.PRIORS[name].build(tok, refs, args.k, **kwargs))
               for name in ("oracle", "frequent", "dictionary")}
    if args.task_model:
        task_path = resolve(args.task_model)
        task = (load_model(task_path, "float32"), load_tokenizer(task_path))
        sources["task_model"] = lambda: priors.from_model(tok, refs, args.k, model_loader=lambda: task,
                                                          weights={"path": task_path}, train_cost=Cost(),
                                                          **kwargs)

    def decode(prior_ids=None) -> int:
        """Decode every item; the number of tokens generated (priors excluded)."""
        gens = generate(model, tok, prompts, prior_ids, max_new_tokens=args.max_new_tokens,
                        batch_size=args.batch_size)
        return sum(len(g.new_ids) for g in gens)

    def run(make=None) -> tuple[float, float, int]:
        """(total wall s, of which computing the prior, tokens generated)."""
        start = time.perf_counter()
        prior_ids = make().ids if make else None
        prior_s = time.perf_counter() - start
        new_tokens = decode(prior_ids)
        return time.perf_counter() - start, prior_s, new_tokens

    decode()  # warm-up: first-call allocations and the newline-id table are not what we measure
    runs: dict[str, list[tuple[float, float, int]]] = {"base": []}
    for _ in range(args.repeats):  # interleaved, so drift in machine load hits every method alike
        runs["base"].append(run())
        for name, make in sources.items():
            runs.setdefault(name, []).append(run(make))
    base = statistics.median(r[0] for r in runs["base"])
    print(f"model {args.model}, {len(items)} items, k={args.k}, batch {args.batch_size}, "
          f"median of {args.repeats}")
    print("x base = total wall time against plain base decoding of the same items (the issue's target);\n"
          "prior s = computing the prior alone. A prior also changes what is generated (new tokens), and a\n"
          "batch decodes until its longest output ends: that moves the decoding time in either direction.")
    print(f"{'method':<12} {'wall s':>8} {'x base':>7} {'target':>7} {'prior s':>8} {'new tokens':>10}")
    for name, values in runs.items():
        total = statistics.median(r[0] for r in values)
        prior_s = statistics.median(r[1] for r in values)
        tokens = statistics.median(r[2] for r in values)
        target = "" if name == "base" else ("1.30" if name == "task_model" else "1.05")
        print(f"{name:<12} {total:>8.2f} {total / base:>7.3f} {target:>7} {prior_s:>8.2f} {tokens:>10.0f}")


if __name__ == "__main__":
    main()
