import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DATA_DIR = Path(os.environ.get("YARN_DATA_DIR", REPO.parent / "shared" / "data"))

# Never talk to the W&B server or the hub from tests: offline runs are the real artefact here.
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="session")
def data_dir() -> Path:
    if not (DATA_DIR / "ud").is_dir():
        pytest.skip(f"data directory {DATA_DIR} (UD treebanks) is absent; set YARN_DATA_DIR")
    return DATA_DIR


@pytest.fixture(scope="session")
def tiny_model() -> str:
    from core.models import resolve

    return resolve("tiny-llama")


@pytest.fixture(scope="session")
def gemma():
    """The real Gemma-3 tokenizer (the packaged model, converted once into the cache)."""
    from transformers import AutoTokenizer

    from core.models import resolve

    return AutoTokenizer.from_pretrained(resolve("gemma-3-270m"))


def run_cli(*args: str, env: dict | None = None, timeout: int = 1200) -> subprocess.CompletedProcess:
    """`python cli.py ARGS` as a user runs it (W&B offline, the data directory of this checkout)."""
    full = dict(os.environ, YARN_DATA_DIR=str(DATA_DIR), WANDB_MODE="offline") | (env or {})
    full.pop("WANDB_API_KEY", None)
    return subprocess.run([sys.executable, "cli.py", *args], cwd=REPO, env=full, capture_output=True,
                          text=True, timeout=timeout)


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory, tiny_model):
    """configs/experiments/smoke.yaml run once per session (tiny model, two DeepSpeed ranks): the end-to-end
    tests read it, the fault tests copy it instead of training again."""
    out = tmp_path_factory.mktemp("e2e") / "runs"
    first = run_cli("run", "configs/experiments/smoke.yaml", f"output_dir={out}")
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    return out / "smoke", first
