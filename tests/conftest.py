import os
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
