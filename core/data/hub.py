"""Reaching the Hugging Face hub, shared by the parallel and the monolingual hub sources: whether to try at
all, and offline mode for one call.

`datasets` and `huggingface_hub` are imported inside the functions, only when a hub source is used: datasets
takes ~2 s to import, and both read HF_HUB_OFFLINE when first imported, which importing core.data must not
fix.
"""
from __future__ import annotations

import os
import socket
import urllib.request
from contextlib import contextmanager
from typing import Iterator
from urllib.parse import urlparse


def offline_reason() -> str:
    """Why the hub should be left alone ("" if it can be used): datasets retries an unreachable hub for ~25 s
    before failing, so a 3 s probe decides up front."""
    from huggingface_hub import constants   # only when used: see the module's docstring

    if any(os.environ.get(v, "").strip().upper() in {"1", "ON", "YES", "TRUE"}
           for v in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")):
        return "offline mode is set"
    endpoint = constants.ENDPOINT
    target = urlparse(urllib.request.getproxies().get(urlparse(endpoint).scheme) or endpoint)
    try:
        socket.create_connection((target.hostname, target.port or (443 if target.scheme == "https" else 80)),
                                 timeout=3).close()
        return ""
    except OSError:
        return f"{endpoint} unreachable"


@contextmanager
def offline(on: bool) -> Iterator[None]:
    """Offline mode for one call. datasets and huggingface_hub read HF_HUB_OFFLINE only when first imported,
    so setting their flags is what honours the variable whenever it was set; cached datasets still load."""
    import datasets.config   # only when used: see the module's docstring
    from huggingface_hub import constants

    saved = datasets.config.HF_HUB_OFFLINE, constants.HF_HUB_OFFLINE
    if on:
        datasets.config.HF_HUB_OFFLINE = constants.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        datasets.config.HF_HUB_OFFLINE, constants.HF_HUB_OFFLINE = saved
