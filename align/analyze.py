"""Token distribution shift (URIAL / AlignTDS): where does an aligned model's next-token choice differ from
the base's?

Both models read the same prompt and the aligned model's own greedy output, teacher-forced. At each output
position t we compare P_aligned(.|prefix) with P_base(.|prefix): KL(aligned || base) in nats, and the rank of
the aligned token under the base model (1: unshifted, 2-3: marginal, >3: shifted). PreTTY forces j prior
tokens and lets the base decode on; under teacher forcing the base already sees the aligned prefix, so "j
priors" selects positions t >= j, and position t = j is the one right after the prior.

  ./launch.sh analyze --run-dir runs/demo --arm sft --direction en-de --n 50
      -> runs/demo/analysis/shift-sft-mt-en-de.json and .png, and a W&B run (job type "analysis")

Under the DeepSpeed launcher, `PYTHONPATH=. deepspeed --num_gpus 2 --module align.analyze --run-dir ...
--items 50` (its runner takes `--n` for an abbreviation of its own options), the ranks share the batches
(core.decoding.run_batches) and rank 0 alone writes, logs and prints.
"""
from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path

import torch

from core.args import positive
from core.arms import trained
from core.config import load_config
from core.decoding import generate, join_ranks, run_batches, world
from core.errors import UserError
from core.io import atomic_write_bytes, atomic_write_json, check_writable, read_jsonl
from core.models import load_model, load_tokenizer, resolve
from core.rundir import RunDir
from core.tracking import init_run

CLASSES = ("unshifted", "marginal", "shifted")


@torch.no_grad()
def output_logprobs(model, tok, prompts: list[str], outputs: list[list[int]]) -> list[torch.Tensor]:
    """Per item, a float32 [len(output), vocab] tensor: row t is log P(. | prompt, output[:t]), one forward
    pass."""
    seqs = [tok(p).input_ids + list(o) for p, o in zip(prompts, outputs)]
    width, longest = max(map(len, seqs)), max(map(len, outputs))
    ids = torch.full((len(seqs), width), tok.pad_token_id, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for row, s in enumerate(seqs):
        ids[row, width - len(s):], mask[row, width - len(s):] = torch.tensor(s), 1
    # Left padding with positions counted from each item's first token, as in generate(): every output ends in
    # the last column, so only the last longest+1 columns need logits (the very last predicts past the
    # output).
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    logits = model(input_ids=ids.to(model.device), attention_mask=mask.to(model.device),
                   position_ids=positions.to(model.device), logits_to_keep=longest + 1).logits[:, :-1]
    return [torch.log_softmax(logits[row, longest - len(o):].float(), -1) for row, o in enumerate(outputs)]


def _vocab_size(model) -> int:
    return model.get_output_embeddings().weight.shape[0]


def _shares(ranks: list[int]) -> dict | None:
    if not ranks:
        return None
    counts = [sum(r == 1 for r in ranks), sum(2 <= r <= 3 for r in ranks), sum(r > 3 for r in ranks)]
    return {c: n / len(ranks) for c, n in zip(CLASSES, counts)}


def _mean(xs: list[float]) -> float | None:
    return sum(xs) / len(xs) if xs else None


def _summary(kls: list[list[float]], ranks: list[list[int]], j: int) -> dict:
    longest = max(map(len, kls), default=0)
    at = {t: [kl[t] for kl in kls if len(kl) > t] for t in range(j, longest)}
    after = [r for rs in ranks for r in rs[j:]]
    return {"j": j, "positions": list(at), "mean_kl": [_mean(v) for v in at.values()],
            "count": [len(v) for v in at.values()], "tokens": len(after),
            "mean_kl_all": _mean([k for kl in kls for k in kl[j:]]), "shares": _shares(after),
            "at_prior": {"position": j, "tokens": len(at.get(j, [])), "mean_kl": _mean(at.get(j, [])),
                         "shares": _shares([rs[j] for rs in ranks if len(rs) > j])}}


def shift_statistics(base_model, aligned_model, tok, prompts: list[str], outputs: list[list[int]],
                     priors_j=(0, 1, 2), batch_size: int = 8) -> dict:
    """Per-position KL(aligned || base) and base rank of the aligned token, summarised for each j in
    priors_j."""
    if _vocab_size(base_model) != _vocab_size(aligned_model):
        raise UserError(f"base and aligned models have different vocabularies ({_vocab_size(base_model)} vs "
                        f"{_vocab_size(aligned_model)} tokens): shift needs one shared tokenizer")
    order = sorted((i for i in range(len(prompts)) if outputs[i]), key=lambda i: -len(outputs[i]))

    def batch(idx: list[int]) -> list[tuple[list[float], list[int]]]:
        args = ([prompts[i] for i in idx], [outputs[i] for i in idx])
        rows = []
        # Full-vocabulary tensors live for one batch only: each item is reduced to two numbers per position.
        for i, a, b in zip(idx, output_logprobs(aligned_model, tok, *args),
                           output_logprobs(base_model, tok, *args)):
            b = b.to(a.device)
            chosen = b.gather(-1, torch.tensor(outputs[i], device=b.device)[:, None])
            rows.append((torch.where(a > -torch.inf, a.exp() * (a - b), 0.0).sum(-1).tolist(),
                         (1 + (b > chosen).sum(-1)).tolist()))  # ties count in the aligned token's favour
        return rows

    # batches shared among ranks, halved on running out of memory (teacher-forced: padding changes rounding)
    done = run_batches(order, batch_size, batch, "shift")
    kls = [done[i][0] if i in done else [] for i in range(len(prompts))]
    ranks = [done[i][1] if i in done else [] for i in range(len(prompts))]
    return {"by_prior": [_summary(kls, ranks, j) for j in priors_j],
            "items": [{"kl": kl, "base_rank": r} for kl, r in zip(kls, ranks)]}


def plot(stats: dict, path: str | Path, title: str = "") -> None:
    """(a) mean KL per output position, marking where each prior ends; (b) rank classes for t >= j and
    t = j."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(12, 4.8))
    FigureCanvasAgg(fig)
    ax, bx = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1.2, 1]})
    # Teacher-forced, every j gives the same curve from t = j on: one line, with the prior boundaries marked.
    full = min(stats["by_prior"], key=lambda s: s["j"])
    # Outputs end at different lengths: the grey bars say how many items each late mean rests on.
    counts = ax.twinx()
    counts.bar(full["positions"], full["count"], color="grey", alpha=0.18, width=0.8)
    counts.set_ylabel("outputs reaching position t", color="grey")
    counts.set_ylim(0, 1.05 * max(full["count"], default=1))
    ax.set_zorder(counts.get_zorder() + 1)
    ax.patch.set_visible(False)
    ax.plot(full["positions"], full["mean_kl"], marker="o", ms=3, color="tab:blue")
    at = [(s["j"], s["at_prior"]["mean_kl"]) for s in stats["by_prior"]
          if s["at_prior"]["mean_kl"] is not None]
    ax.plot([j for j, _ in at], [kl for _, kl in at], "o", color="tab:red", ms=7,
            label="t = j: first token the base decodes after j priors")
    ax.legend(loc="upper right", fontsize=8)
    ax.set_ylim(0, 1.15 * max((v for v in full["mean_kl"] if v is not None), default=1))
    ax.set(xlabel="output position t",
           ylabel="mean KL(aligned ‖ base), nats", title="(a) distribution shift per position")
    ax.grid(alpha=0.3)

    bars = [(f"t ≥ {s['j']}", s["tokens"], s["shares"]) for s in stats["by_prior"]] + \
           [(f"t = {s['j']}", s["at_prior"]["tokens"], s["at_prior"]["shares"]) for s in stats["by_prior"]]
    bars = [b for b in bars if b[2]]
    names = [f"{name}\nn={n}" for name, n, _ in bars]
    bottom = [0.0] * len(bars)
    for c, color, label in zip(CLASSES, ("tab:green", "tab:orange", "tab:red"),
                               ("unshifted (rank 1)", "marginal (rank 2-3)", "shifted (rank > 3)")):
        vals = [sh[c] for _, _, sh in bars]
        drawn = bx.bar(names, vals, bottom=bottom, color=color, label=label)
        bx.bar_label(drawn, [f"{v:.0%}" if v >= 0.06 else "" for v in vals], label_type="center", fontsize=8)
        bottom = [b + v for b, v in zip(bottom, vals)]
    bx.axvline(len(bars) / 2 - 0.5, color="black", lw=0.8, ls=":")
    bx.set(ylim=(0, 1), ylabel="share of aligned tokens", title="(b) base-model rank of the aligned token")
    bx.legend(loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=3, fontsize=8, frameon=False)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    png = io.BytesIO()
    fig.savefig(png, format="png", dpi=120)
    atomic_write_bytes(path, png.getvalue())


def _scalars(stats: dict) -> dict[str, float]:
    out = {}
    for s in stats["by_prior"]:
        for scope, mean, shares in (("after", s["mean_kl_all"], s["shares"]),
                                    ("at", s["at_prior"]["mean_kl"], s["at_prior"]["shares"])):
            if mean is not None:
                out[f"shift/j{s['j']}/{scope}/mean_kl"] = mean
                out.update({f"shift/j{s['j']}/{scope}/{c}": shares[c] for c in CLASSES})
    return out


def analyze(base_path: str, aligned_path: str, prompts: list[str], *, adapter: bool = False,
            max_new_tokens: int = 48, batch_size: int = 8, dtype: str = "float32", priors_j=(0, 1, 2),
            out: str | Path | None = None, wandb_run=None, meta: dict | None = None) -> dict:
    """Generate the aligned model's greedy answers, measure the shift; with `out`, write out (JSON) and its
    .png."""
    tok = load_tokenizer(base_path)
    # An adapter directory may carry no tokenizer: it then shares the base's by construction.
    own_tok = (Path(aligned_path) / "tokenizer_config.json").is_file()
    if own_tok and load_tokenizer(aligned_path).get_vocab() != tok.get_vocab():
        raise UserError(f"{aligned_path}: its tokenizer differs from the base model's; "
                        "shift needs one shared vocabulary")
    base = load_model(base_path, dtype)
    aligned = (load_model(base_path, dtype, adapter=aligned_path) if adapter
               else load_model(aligned_path, dtype))
    gens = generate(aligned, tok, prompts, max_new_tokens=max_new_tokens, batch_size=batch_size,
                    stop_at_newline=True, desc="aligned outputs")
    outputs = [g.new_ids for g in gens]
    stats = shift_statistics(base, aligned, tok, prompts, outputs, priors_j, batch_size)
    for item, prompt, ids in zip(stats["items"], prompts, outputs):
        item.update(prompt=prompt, output=tok.decode(ids), tokens=tok.convert_ids_to_tokens(ids))
    result = {"base": base_path, "aligned": aligned_path, "adapter": adapter, "n_items": len(prompts),
              "max_new_tokens": max_new_tokens, "dtype": dtype, **(meta or {}), **stats}
    if out is not None and world()[0] == 0:   # every rank holds the result: rank 0 alone writes it
        atomic_write_json(out, result)
        plot(result, Path(out).with_suffix(".png"),
             f"{'/'.join(Path(aligned_path).parts[-2:])} vs {Path(base_path).name}: {len(prompts)} prompts, "
             "aligned model's greedy outputs teacher-forced into both")
    if wandb_run is not None:
        scalars = _scalars(result)
        if out is not None:
            import wandb

            scalars["shift/plot"] = wandb.Image(str(Path(out).with_suffix(".png")))
        wandb_run.log(scalars)
    return result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="./launch.sh analyze", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run-dir", required=True,
                   help="run directory; prompts come from RUN_DIR/data/test.jsonl")
    p.add_argument("--arm", default="sft",
                   help="training arm of the run to compare with its base model (default sft)")
    p.add_argument("--base", help="base model (default: the run's model)")
    p.add_argument("--aligned", help="aligned checkpoint directory (default: the arm's checkpoint)")
    p.add_argument("--adapter", action="store_true", help="--aligned is a PEFT adapter to load on --base")
    p.add_argument("--task", default="mt", choices=["mt", "pos"],
                   help="only test rows of this task (default mt; POS rows share the direction names)")
    p.add_argument("--direction", help="only test rows of this direction, e.g. en-de (default: all)")
    # --items: under the deepspeed launcher, whose own options --n abbreviates
    p.add_argument("--n", "--items", dest="n", type=positive(int), default=50, help="first N test rows")
    p.add_argument("--max-new-tokens", type=positive(int), default=48)
    p.add_argument("--batch-size", type=positive(int), default=8)
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16", "auto"],
                   help="float32 keeps small KLs above rounding noise")
    p.add_argument("--out", help="JSON file, the plot goes next to it as .png "
                                 "(default RUN_DIR/analysis/shift-ARM-TASK[-DIRECTION].json)")
    p.add_argument("--local_rank", type=int, default=-1, help=argparse.SUPPRESS)   # from a deepspeed launch
    args = p.parse_args(argv)
    join_ranks()   # under the launcher: share the batches
    try:
        run_dir = Path(args.run_dir)
        test = RunDir(run_dir).rows("test")
        if not test.is_file():
            raise UserError(f"{test}: no such file (run the prepare stage first)")
        rows = [r for r in read_jsonl(test)
                if r.get("task") == args.task and args.direction in (None, r.get("direction"))][:args.n]
        if not rows:
            raise UserError(f"{test}: no {args.task} rows"
                            + (f" of direction {args.direction!r}" if args.direction else ""))
        if any("prompt" not in r for r in rows):
            raise UserError(f"{test}: rows lack a 'prompt' field")
        cfg = _run_config(run_dir)
        base, aligned, adapter = args.base, args.aligned, args.adapter
        if aligned is None:  # the arm's checkpoint, as its training recorded it
            _check_arm(cfg, args.arm)
            # the shift of damaged weights would be no one's
            rec = RunDir(run_dir).trained(args.arm, "--arm")
            aligned, adapter = rec.model_dir, rec.method == "lora"
        if base is None:
            if cfg is None:
                raise UserError(f"{run_dir}: no config.yaml; pass --base")
            base = cfg.model.name
        if adapter and not (Path(aligned) / "adapter_config.json").is_file():
            raise UserError(f"{aligned}: not a PEFT adapter directory (no adapter_config.json)")
        aligned = str(Path(aligned).resolve()) if adapter else resolve(aligned)
        out = Path(args.out or run_dir / "analysis"
                   / f"shift-{args.arm}-{args.task}{'-' + args.direction if args.direction else ''}.json")
        check_writable(out.parent, "--out")   # before any model loads: the result is written last
        wandb_run = None
        if cfg is not None and cfg.wandb.mode != "disabled" and world()[0] == 0:

            wandb_run = init_run(cfg, run_dir, out.stem, "analysis")
        analyze(resolve(base), aligned, [r["prompt"] for r in rows], adapter=adapter,
                max_new_tokens=args.max_new_tokens, batch_size=args.batch_size, dtype=args.dtype, out=out,
                wandb_run=wandb_run, meta={"run_dir": str(run_dir), "task": args.task,
                                           "direction": args.direction, "arm": args.arm})
        if wandb_run is not None:
            wandb_run.finish()
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code
    if world()[0] == 0:
        print(f"[shift] {out}, {out.with_suffix('.png')}")
    return 0


def _check_arm(cfg, arm: str) -> None:
    """An arm the run does not have, and one that trains nothing, are told apart from one not trained yet."""
    if cfg is None:
        return
    names = [a.name for a in cfg.arm_runs()]
    if arm not in names:
        raise UserError(f"--arm {arm!r}: not an arm of this run (arms: {', '.join(names)})")
    if not trained(cfg.arm(arm).method):
        training = ", ".join(a.name for a in cfg.trained_arms()) or "none in this run"
        raise UserError(f"--arm {arm!r}: a {cfg.arm(arm).method} arm trains no checkpoint; pick a training "
                        f"arm ({training}) or pass --aligned")


def _run_config(run_dir: Path):
    config = RunDir(run_dir).config
    return load_config(config) if config.is_file() else None


if __name__ == "__main__":
    sys.exit(main())
