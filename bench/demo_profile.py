"""Where a run's wall time goes: a command (by default the demo) under py-spy, every process it starts
(DeepSpeed launcher, training ranks, evaluation) sampled, then the samples summed by stage.

    ./launch.sh bench demo_profile [--out DIR] [-- COMMAND ...]        # default: the demo into DIR/runs
    ./launch.sh bench demo_profile --summarize DIR/profile.txt         # the table again, from the samples

py-spy samples each process's Python threads (10 per second here); the native threads of a matmul are not
sampled, their time shows in the Python frame that called them. Seconds are samples / rate, summed over
processes (an idle waiting thread is not sampled). Printed: seconds and share per stage, the top leaf
functions, and the command's own wall time. py-spy is in requirements.txt; it needs ptrace (root, or
kernel.yama.ptrace_scope=0).
"""
from __future__ import annotations

import argparse
import collections
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RATE = 10   # samples per second: a ~1% overhead on 2 cores

# first match wins: the more specific stages first (a training step's head inside its forward, ...)
STAGES = [
    ("train: optimizer step", r"torch/optim/|_optimizer_step|DeepSpeedZeroOptimizer\.step"),
    ("train: LM head forward (TRL fused)", r"ChunkedLogProbFunction\.forward"),
    ("train: LM head backward (TRL fused)", r"ChunkedLogProbFunction\.backward"),
    ("train: ZeRO gradient hooks",
     r"reduce_independent_p_g_buckets|reduce_ready_partitions|grad_handling_hook"),
    ("train: body backward", r"_engine_run_backward"),
    ("train: body forward", r"compute_loss"),
    ("train: save and check checkpoint", r"save_model|save_pretrained|check_checkpoint|sha256"),
    ("train: DeepSpeed set-up", r"deepspeed\.initialize|_prepare_deepspeed|DeepSpeedEngine\.__init__"),
    ("DeepSpeed op build (JIT, once per machine)", r"build_shm_op|jit_load|builder\.load"),
    ("eval: model priors (PreTTY sft/lora)", r"from_model \(align/priors"),
    # the head: the Linear a *ForCausalLM's forward calls itself (the body's Linears sit under its layers)
    ("eval: decoding, LM head",
     r"ForCausalLM\.forward \([^)]*\)(;Module\._\w*call_impl \([^)]*\))*;Linear\.forward"),
    ("eval: decoding, rest", r"GenerationMixin|nudge_generate"),
    ("eval: tokenizers, models loaded", r"load_tokenizer|load_model|from_pretrained"),
    ("report", r"_report|eval/report"),
    ("imports", r"<module> \((?!train/run\.py|cli\.py)"),
]


def summarize(profile: Path, top: int = 20) -> str:
    stages, leaves = collections.Counter(), collections.Counter()
    for line in profile.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        n = int(count)
        stages[next((name for name, pattern in STAGES if re.search(pattern, stack)), "other")] += n
        leaf = stack.rsplit(";", 1)[-1]
        leaves[re.sub(r" \((?:.*/)?([^/:]+):\d+\)$", r" (\1)", leaf)] += n
    total = sum(stages.values()) or 1
    rows = ["| stage | s | share |", "|---|---:|---:|"]
    rows += [f"| {name} | {n / RATE:.0f} | {100 * n / total:.1f}% |" for name, n in stages.most_common()]
    rows += ["", "| leaf function | s | share |", "|---|---:|---:|"]
    rows += [f"| {name[:90]} | {n / RATE:.0f} | {100 * n / total:.1f}% |"
             for name, n in leaves.most_common(top)]
    return "\n".join(rows)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="bench-out/demo_profile", help="folder for profile.txt and the run")
    p.add_argument("--summarize", metavar="PROFILE", help="only print the table of an earlier profile")
    p.add_argument("command", nargs=argparse.REMAINDER, help="after --: the command to profile")
    args = p.parse_args(argv)
    if args.summarize:
        print(summarize(Path(args.summarize)))
        return 0
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(spy).is_file():
        print("py-spy is not installed: pip install py-spy", file=sys.stderr)
        return 2
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    command = [c for c in args.command if c != "--"] or [
        sys.executable, str(REPO / "cli.py"), "run", str(REPO / "configs/experiments/demo.yaml"),
        f"output_dir={out / 'runs'}"]
    start = time.time()
    proc = subprocess.run([spy, "record", "--subprocesses", "--rate", str(RATE), "--format", "raw",
                           "-o", str(out / "profile.txt"), "--", *command], cwd=REPO)
    wall = time.time() - start
    table = summarize(out / "profile.txt")
    (out / "profile.md").write_text(f"command: {' '.join(command)}\n"
                                    f"wall: {wall:.0f} s, exit {proc.returncode}\n\n{table}\n")
    print(f"\nwall {wall:.0f} s (exit {proc.returncode}); samples summed by stage:\n{table}")
    return proc.returncode


if __name__ == "__main__":
    sys.exit(main())
