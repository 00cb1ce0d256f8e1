"""COMET (Rei et al. 2020/2022) beside BLEU and chrF, scored in COMET's own environment.

unbabel-comet pins numpy<2 and transformers<5, so it cannot live in the framework's environment:
`./launch.sh comet-setup` builds one of its own (`.venv-comet`, or env YARN_COMET_VENV), and each scoring runs
eval/comet_runner.py there as a subprocess, JSONL in, JSON out. Set up on request only (`eval.comet` in a
config): when that environment is missing, or the model cannot be reached (an offline hub, a missing path),
or the runner fails, COMET is skipped with one printed line saying why — never a crash, never a made-up
number; the record then has no `comet` metric and says why in its `comet` field.
"""
from __future__ import annotations

import json
import math
import os
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from core.data import hub
from core.io import sha256_file

REPO = Path(__file__).resolve().parents[1]
RUNNER = Path(__file__).with_name("comet_runner.py")
SETUP = "set it up with ./launch.sh comet-setup (or point YARN_COMET_VENV at a venv with unbabel-comet)"
ERROR = "COMET-ERROR: "   # the runner's last stderr line on failure (eval/comet_runner.py)

_hashes: dict[tuple[str, int, int], str] = {}   # (checkpoint, size, mtime): a 2 GB file is hashed once


def venv_dir() -> Path:
    return Path(os.environ.get("YARN_COMET_VENV") or REPO / ".venv-comet").expanduser()


@dataclass(frozen=True)
class CometResult:
    score: float | None                 # the system score (the mean of the items'); None: skipped
    scores: list[float] | None          # per item
    info: dict                          # which model scored (model, checkpoint, sha256, versions), or why not


def _local_checkpoint(model: str) -> Path | None:
    """A local model's checkpoint file: the .ckpt itself, or `<dir>/checkpoints/model.ckpt` (COMET's layout);
    None for a hub id. FileNotFoundError for a path that is not there."""
    path = Path(model).expanduser()
    looks_local = model.startswith((".", "/", "~")) or model.endswith(".ckpt") or model.count("/") != 1
    if not path.exists():
        if looks_local:
            raise FileNotFoundError(f"COMET model {model!r}: no such file or directory")
        return None
    if path.is_dir():
        path = path / "checkpoints" / "model.ckpt"
        if not path.is_file():
            raise FileNotFoundError(f"COMET model {model!r}: a directory without checkpoints/model.ckpt")
    return path.resolve()


def _sha256(path: Path) -> str:
    st = path.stat()
    key = (str(path), st.st_size, st.st_mtime_ns)
    if key not in _hashes:
        _hashes[key] = sha256_file(path)
    return _hashes[key]


def _skip(info: dict, reason: str, where: str) -> CometResult:
    print(f"[eval] {where}: COMET skipped: {reason}", flush=True)
    return CometResult(None, None, info | {"skipped": reason})


def _failure(stderr: str, returncode: int) -> str:
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    marked = [line[len(ERROR):] for line in lines if line.startswith(ERROR)]
    if marked:
        return marked[-1]
    return (lines[-1][:300] if lines else "no message") + f" (exit code {returncode})"


def comet_scores(srcs: list[str], hyps: list[str], refs: list[str], model: str, batch_size: int = 16,
                 where: str = "mt") -> CometResult:
    """COMET's scores of `hyps` against `srcs` and `refs` by `model` (a hub id or a local checkpoint),
    computed in the COMET environment; skipped (score None, the reason in `info`) when that cannot be done."""
    if not len(srcs) == len(hyps) == len(refs):
        raise ValueError(f"{len(srcs)} sources, {len(hyps)} hypotheses, {len(refs)} references")
    info: dict = {"model": model}
    python = venv_dir() / "bin" / "python"
    if not os.access(python, os.X_OK):
        return _skip(info, f"no COMET environment at {venv_dir()}; {SETUP}", where)
    try:
        checkpoint = _local_checkpoint(model)
    except FileNotFoundError as e:
        return _skip(info, f"{e}; give a hub id or a local COMET model", where)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    offline_because = ""
    if checkpoint is None:   # a hub id: from the cache when the hub is out of reach (fails fast when absent)
        offline_because = hub.offline_reason()
        if offline_because:
            env["HF_HUB_OFFLINE"] = "1"
    else:
        info |= {"checkpoint": str(checkpoint), "sha256": _sha256(checkpoint)}
    with tempfile.TemporaryDirectory(prefix="yarn-comet-") as tmp:
        items, scores = Path(tmp) / "items.jsonl", Path(tmp) / "scores.json"
        items.write_text("".join(json.dumps({"src": s, "mt": h, "ref": r}, ensure_ascii=False) + "\n"
                                 for s, h, r in zip(srcs, hyps, refs)), encoding="utf-8")
        # -I: neither the runner's folder (eval/, whose comet.py is this file) nor PYTHON* variables
        cmd = [str(python), "-I", str(RUNNER), "--model", str(checkpoint or model), "--input", str(items),
               "--output", str(scores), "--batch-size", str(batch_size)]
        try:
            proc = subprocess.run(cmd, cwd=tmp, env=env, capture_output=True, text=True)
        except OSError as e:   # a broken interpreter link, a script without an interpreter
            return _skip(info, f"cannot run {python} ({e}); {SETUP}", where)
        if proc.returncode != 0:
            reason = _failure(proc.stderr, proc.returncode)
            if reason.startswith(("ModuleNotFoundError", "ImportError")):   # a half-built environment
                reason += f"; {SETUP}"
            if offline_because:
                reason += f" (the hub: {offline_because}; a model not in the cache cannot be loaded)"
            return _skip(info, f"the COMET runner failed: {reason}", where)
        try:
            out = json.loads(scores.read_text(encoding="utf-8"))
            system, per_item = float(out["system_score"]), [float(s) for s in out["scores"]]
        except (OSError, ValueError, KeyError, TypeError) as e:
            return _skip(info, f"the COMET runner wrote no readable scores ({type(e).__name__}: {e})", where)
    if len(per_item) != len(hyps) or not all(map(math.isfinite, [system, *per_item])):
        return _skip(info, f"the COMET runner gave {len(per_item)} scores for {len(hyps)} items, or a "
                     "non-finite one", where)
    info |= {"checkpoint": info.get("checkpoint") or out.get("checkpoint"),
             "unbabel_comet": out.get("unbabel_comet"), "torch": out.get("torch"), "gpus": out.get("gpus")}
    return CometResult(system, per_item, info)
