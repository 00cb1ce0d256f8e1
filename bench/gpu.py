"""The GPU fast path, measured: our sft (padded and padding-free), lora and cpt arms under the real
`deepspeed` launcher, and batched decoding, on a ~1B Llama-architecture model built from a config (random
weights: a GPU box here downloads nothing) in bf16; each arm against a plain TRL `SFTTrainer` on the same
model, data and batch size. Prints tokens/s, MFU and peak memory per arm.

    # here: wheels the GPU box lacks, data and tokenizer -> .gpu/
    python bench/gpu_carry.py
    # there (with .gpu carried), in about five minutes
    python bench/gpu.py --data .gpu --out /tmp/gpu
    # CPU: the tiny model and a few steps (the test suite's run)
    python bench/gpu.py --tiny --out /tmp/gpu-tiny

Each arm's row is written to OUT/rows/<arm>.json as soon as it finishes, so a run cut short keeps what it
measured; OUT/table.md holds the table at the end. Tokens are non-padding tokens (of the carried tokenizer:
the tiny model's 2k-entry BPE, so not comparable with Llama-3's own counts); ours come from the arm's ledger
(`checkpoints/<arm>/train.json`), the baseline's from the Trainer's counter. Two clocks: `trainer.train()`
whole, and its steps alone (from the first step: without DeepSpeed's engine setup, a one-time cost that
dominates short runs). Both sides train the same way: mixed precision (bf16 compute, fp32 master weights and
Adam states: ZeRO-2's, and the baseline's model loaded in fp32), the arm's activation checkpointing, batches
grouped by length where ours are (padded sft/lora). Peak memory is the process's, from its start. The
baseline's MFU is charged the FLOPs of our arm on the same examples (same tokens, same LM-head positions).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
import traceback
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

# Llama-3.2-1B's shape (1.24B parameters, 0.97B without the tied embedding)
LLAMA_1B = dict(hidden_size=2048, intermediate_size=8192, num_hidden_layers=16, num_attention_heads=32,
                num_key_value_heads=8, vocab_size=128256, max_position_embeddings=2048, rope_theta=500000.0)
SIZES = {  # examples, test prompts, batch size, decode tokens, cpt sequence length
    "gpu": dict(budget=2048, test=256, batch=64, new_tokens=128, cpt_length=1024, cpt_batch=8),
    "tiny": dict(budget=16, test=8, batch=4, new_tokens=8, cpt_length=64, cpt_batch=2),
}
TRAINING = {"sft": "{method: sft, epochs: 1, learning_rate: 5.0e-5, batch_size: %(batch)d, max_length: 512}",
            "sft-padding-free": "{method: sft, name: sft-padding-free, epochs: 1, learning_rate: 5.0e-5, "
                                "batch_size: %(batch)d, max_length: 512, padding_free: true}",
            "lora": "{method: lora, epochs: 1, learning_rate: 3.0e-4, batch_size: %(batch)d, "
                    "max_length: 512, r: 16, alpha: 32}",
            "cpt": "{method: cpt, langs: [de], batch_size: %(cpt_batch)d, max_length: %(cpt_length)d, "
                   "learning_rate: 5.0e-5, text: [{source: text, path: %(data)s/de.txt, lang: de}]}"}


def export_data(out: Path, n_train: int, n_test: int, n_mono: int) -> Path:
    """Bible en-de pairs (training books; test pairs from the held-out books), German text for cpt from other
    verses, and the tiny model's tokenizer: what the GPU box cannot fetch."""
    from core.data.parallel import BibleSource, load_pairs
    from core.io import atomic_write_jsonl, atomic_write_text
    from core.models import load_tokenizer, resolve

    bible = BibleSource(source="bible")
    train = load_pairs(bible, "en", "de", "train", None)
    test = load_pairs(bible, "en", "de", "test", None)[:n_test]
    if len(train) < n_train + n_mono:
        raise SystemExit(f"export: {len(train)} training pairs, {n_train + n_mono} asked for")
    atomic_write_jsonl(out / "train.jsonl", [{"src": p.src, "tgt": p.tgt} for p in train[:n_train]])
    atomic_write_jsonl(out / "test.jsonl", [{"src": p.src, "tgt": p.tgt} for p in test])
    mono = [p.tgt for p in train[n_train:n_train + n_mono]]
    atomic_write_text(out / "de.txt",
                      "\n\n".join(" ".join(mono[i:i + 20]) for i in range(0, len(mono), 20)) + "\n")
    load_tokenizer(resolve("tiny-llama")).save_pretrained(out / "tokenizer")
    return out


def build_model(out: Path, tokenizer_dir: Path) -> Path:
    """A Llama-3.2-1B-shaped model with random weights, in bf16, and the carried tokenizer."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    if (out / "config.json").is_file():
        return out
    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    config = LlamaConfig(**LLAMA_1B, tie_word_embeddings=True, pad_token_id=tok.pad_token_id,
                         bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id)
    torch.manual_seed(0)
    with torch.device("cuda" if torch.cuda.is_available() else "cpu"):
        model = LlamaForCausalLM(config).to(torch.bfloat16)
    tmp = out.with_name(out.name + ".tmp")
    model.save_pretrained(tmp)
    tok.save_pretrained(tmp)
    tmp.rename(out)
    return out


def write_config(out: Path, model: str, data: Path, size: dict, dtype: str, arms: list[str]) -> Path:
    training = ", ".join(TRAINING[a] % {**size, "data": data} for a in arms)
    path = out / "bench.yaml"
    path.write_text(f"""name: gpu-bench
seed: 0
model: {{name: {model}, dtype: {dtype}}}
tasks:
  mt:
    directions: [en-de]
    train: {{source: file, path: {data}/train.jsonl}}
    test: [{{source: file, path: {data}/test.jsonl}}]
data: {{budget: {size['budget']}, test_size: {size['test']}}}
arms: [{{method: base}}, {training}]
deepspeed: {{config: configs/deepspeed/zero2.json, num_gpus: 1}}
wandb: {{mode: disabled}}
""")
    return path


def plain_trl(run_dir: Path, arm_name: str, out: Path) -> None:
    """What a user would write with TRL alone, no DeepSpeed, for the same arm (run in its own process)."""
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, TrainerCallback

    from core.config import load_config
    from core.io import read_jsonl
    from core.ledger import peak_memory_mb
    from core.models import load_tokenizer, resolve, torch_dtype
    from train.sft import lora_config, tokens_seen
    from trl import SFTConfig, SFTTrainer

    cfg = load_config(run_dir / "config.yaml")
    arm, path = cfg.arm(arm_name), resolve(cfg.model.name)
    if arm.method == "cpt":
        rows = read_jsonl(run_dir / "data" / f"pretrain-{arm.name}.jsonl")
        data = Dataset.from_list([{"input_ids": r["input_ids"]} for r in rows])
    else:
        rows = read_jsonl(run_dir / "data" / "train.jsonl")
        data = Dataset.from_list([{"prompt": r["prompt"], "completion": r["completion"]} for r in rows])
    padding_free = bool(getattr(arm, "padding_free", False))
    grouped = arm.method in ("sft", "lora") and not padding_free   # as ours (train/sft.py)
    args = SFTConfig(output_dir=str(out / f"plain-{arm_name}"), per_device_train_batch_size=arm.batch_size,
                     num_train_epochs=1, learning_rate=arm.learning_rate, logging_steps=10,
                     save_strategy="no", report_to=[], seed=0, use_cpu=not torch.cuda.is_available(),
                     bf16=torch_dtype(cfg.model.dtype) == torch.bfloat16, padding_free=padding_free,
                     max_length=None if padding_free else arm.max_length,
                     gradient_checkpointing=bool(arm.activation_checkpointing),
                     train_sampling_strategy="group_by_length" if grouped else "random",
                     include_num_input_tokens_seen=tokens_seen(padding_free))
    peft = lora_config(arm) if arm.method == "lora" else None
    # fp32 weights, bf16 autocast: mixed precision with fp32 master weights, as ours under ZeRO-2
    trainer = SFTTrainer(model=AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32),
                         args=args, train_dataset=data, processing_class=load_tokenizer(path),
                         peft_config=peft)
    first_step = {}

    class Clock(TrainerCallback):
        def on_train_begin(self, *args, **kwargs):
            first_step["t"] = time.time()

    trainer.add_callback(Clock())
    start = time.time()
    trainer.train()
    wall = time.time() - start
    (out / f"plain-{arm_name}.json").write_text(json.dumps({
        "tokens": trainer.state.num_input_tokens_seen, "wall_s": wall, "setup_s": first_step["t"] - start,
        "steps": trainer.state.global_step, "peak_mem_mb": peak_memory_mb()}))


def decode(run_dir: Path, size: dict) -> dict:
    """Batched greedy decoding of the test prompts by the base model, up to new_tokens a row (not stopped at a
    line break; the end-of-sequence token still ends a row)."""
    import torch

    from core.config import load_config
    from core.io import read_jsonl
    from core.models import load_model, load_tokenizer, resolve
    from core.decoding import generate

    cfg = load_config(run_dir / "config.yaml")
    path = resolve(cfg.model.name)
    model, tok = load_model(path, cfg.model.dtype), load_tokenizer(path)
    prompts = [r["prompt"] for r in read_jsonl(run_dir / "data" / "test.jsonl")]
    generate(model, tok, prompts[:size["batch"]], max_new_tokens=4, batch_size=size["batch"])   # warm-up
    if torch.cuda.is_available():
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    start = time.time()
    out = generate(model, tok, prompts, max_new_tokens=size["new_tokens"], batch_size=size["batch"],
                   stop_at_newline=False, desc="decode")
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    wall = time.time() - start
    tokens, attention = sum(len(g.new_ids) for g in out), model.config._attn_implementation
    del model
    if torch.cuda.is_available():
        torch.cuda.empty_cache()   # the arms train in other processes
    return {"arm": "decode (base)", "tokens": tokens, "wall_s": wall, "tokens_per_s": tokens / wall,
            "peak_mem_mb": torch.cuda.max_memory_allocated() / 2**20 if torch.cuda.is_available() else None,
            "attention": attention, "batch_size": size["batch"]}


def measure_arm(cfg, run_dir: Path, arm_name: str, out: Path) -> dict:
    from train.launch import train_arms

    # trained now, never a checkpoint left by an earlier run of the bench (it would be reused)
    shutil.rmtree(run_dir / "checkpoints" / arm_name, ignore_errors=True)
    start = time.time()
    train_arms(cfg, run_dir, [arm_name])
    launched_s = time.time() - start
    cost = json.loads((run_dir / "checkpoints" / arm_name / "train.json").read_text())["cost"]
    steps_s = cost["train_wall_s"] - cost["train_setup_s"]
    row = {"arm": arm_name, "tokens": cost["train_tokens"], "wall_s": cost["train_wall_s"],
           "steps_s": steps_s, "tokens_per_s": cost["train_tokens"] / cost["train_wall_s"],
           "mfu": cost["train_mfu"], "steps_tokens_per_s": cost["train_tokens"] / steps_s,
           "peak_mem_mb": cost["train_peak_mem_mb"], "process_s": launched_s}
    env = dict(os.environ,
               PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    subprocess.run([sys.executable, __file__, "--out", str(out), "--plain", str(run_dir), arm_name, str(out)],
                   check=True, env=env)
    plain = json.loads((out / f"plain-{arm_name}.json").read_text())
    plain_tps = plain["tokens"] / plain["wall_s"]
    plain_steps_tps = plain["tokens"] / (plain["wall_s"] - plain["setup_s"])
    row |= {"plain_tokens": plain["tokens"], "plain_tokens_per_s": plain_tps,
            "plain_steps_tokens_per_s": plain_steps_tps,
            "steps_ratio": row["steps_tokens_per_s"] / plain_steps_tps,
            "plain_peak_mem_mb": plain["peak_mem_mb"],
            "plain_mfu": (cost["train_flops"] / cost["train_tokens"] * plain["tokens"]
                          / (plain["wall_s"] * cost["mfu_peak_tflops"] * 1e12))
                         if cost["mfu_peak_tflops"] else None,
            "ratio": row["tokens_per_s"] / plain_tps}
    return row


def _fmt(v, spec: str) -> str:
    return "–" if v is None else format(v, spec)


def _steps_s(r: dict) -> str:
    return f" ({r['steps_s']:.1f})" if "steps_s" in r else ""


def table(rows: list[dict]) -> str:
    lines = ["| arm | tokens | train s (steps) | tokens/s (steps) | MFU | peak GiB | "
             "plain TRL tokens/s (steps) | plain MFU | plain GiB | ours/plain (steps) |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['arm']} | failed: {r['error']} |" + " |" * 8)
            continue
        gib = lambda mb: None if mb is None else mb / 1024  # noqa: E731
        steps = lambda key: f" ({_fmt(r.get(key), ',.0f')})" if key in r else ""  # noqa: E731
        lines.append(f"| {r['arm']} | {r['tokens']:,} | {r['wall_s']:.1f}{_steps_s(r)} | "
                     f"{r['tokens_per_s']:,.0f}{steps('steps_tokens_per_s')} | {_fmt(r.get('mfu'), '.1%')} | "
                     f"{_fmt(gib(r.get('peak_mem_mb')), '.1f')} | {_fmt(r.get('plain_tokens_per_s'), ',.0f')}"
                     f"{steps('plain_steps_tokens_per_s')} | {_fmt(r.get('plain_mfu'), '.1%')} | "
                     f"{_fmt(gib(r.get('plain_peak_mem_mb')), '.1f')} | {_fmt(r.get('ratio'), '.2f')}"
                     f"{' (' + _fmt(r.get('steps_ratio'), '.2f') + ')' if 'steps_ratio' in r else ''} |")
    return "\n".join(lines)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, required=True,
                   help="output folder (rows/, table.md, the run directory)")
    p.add_argument("--data", type=Path, help="folder written by bench/gpu_carry.py (default: exported here)")
    p.add_argument("--tiny", action="store_true", help="CPU check: the tiny model, float32, a few steps")
    p.add_argument("--arms", default="sft-padding-free,sft,lora,cpt",
                   help="comma-separated, of " + ", ".join(TRAINING))
    # the baseline
    p.add_argument("--plain", nargs=3, metavar=("RUN_DIR", "ARM", "OUT"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.plain:
        return plain_trl(Path(args.plain[0]), args.plain[1], Path(args.plain[2]))

    import torch

    from core.config import load_config
    from core.io import atomic_write_json, atomic_write_text
    from core.prepare import prepare

    size = SIZES["tiny" if args.tiny else "gpu"]
    arms = args.arms.split(",")
    if unknown := set(arms) - set(TRAINING):
        p.error(f"--arms: unknown {sorted(unknown)}; known: {', '.join(TRAINING)}")
    args.out.mkdir(parents=True, exist_ok=True)
    data = (args.data
            or export_data(args.out / "data", size["budget"], size["test"], 4 * size["budget"])).resolve()
    if args.tiny:
        from core.models import resolve

        model, dtype = resolve("tiny-llama"), "float32"
    else:
        model, dtype = str(build_model(args.out / "model", data / "tokenizer")), "bfloat16"
    cfg_path = write_config(args.out, model, data, size, dtype, arms)
    cfg = load_config(cfg_path, [f"output_dir={args.out}"])
    run_dir = prepare(cfg, cfg_path)
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else f"CPU ({os.cpu_count()} threads)"
    print(f"[gpu-bench] {device}, model {model}, {dtype}, run {run_dir}", flush=True)

    try:   # first: seconds, and its row survives a run cut short in training
        decoded = decode(run_dir, size)
    except Exception as e:
        traceback.print_exc()
        decoded = {"arm": "decode (base)", "error": f"{type(e).__name__}: {str(e)[:200]}"}
    atomic_write_json(args.out / "rows" / "decode.json", decoded)
    print(f"[gpu-bench] {json.dumps(decoded)}", flush=True)
    rows = []
    for arm in arms:
        try:
            row = measure_arm(cfg, run_dir, arm, args.out)
        except Exception as e:   # one arm failing must not lose the others' rows
            traceback.print_exc()
            row = {"arm": arm, "error": f"{type(e).__name__}: {str(e)[:200]}"}
        rows.append(row)
        atomic_write_json(args.out / "rows" / f"{arm}.json", row)
        print(f"[gpu-bench] {json.dumps(row)}", flush=True)
    row = decoded
    rows.append(row)
    text = (f"{device}; Llama {'tiny' if args.tiny else '1B'} ({dtype}), {size['budget']} en-de examples, "
            f"batch {size['batch']} (cpt {size['cpt_batch']} × {size['cpt_length']}); "
            f"torch {torch.__version__}\n\n"
            + table(rows) + "\n")
    if "error" not in row:
        text += (f"\ndecoding: {row['tokens']:,} tokens in {row['wall_s']:.1f} s = "
                 f"{row['tokens_per_s']:,.0f} tokens/s (batch {row['batch_size']}, "
                 f"{row['attention']} attention)\n")
    atomic_write_text(args.out / "table.md", text)
    print("\n" + text)
    if shutil.which("nvidia-smi"):
        subprocess.run(["nvidia-smi", "--query-gpu=name,memory.used,memory.total", "--format=csv"])


if __name__ == "__main__":
    main()
