"""Argument types shared by the command lines (cli.py, align/analyze.py)."""
from __future__ import annotations

import argparse
import math


def positive(kind: type):
    """An argparse type: a number > 0, as the config's fields are (a price of -1 turns costs negative)."""
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            what = "an integer" if kind is int else "a number"
            raise argparse.ArgumentTypeError(f"{text!r} is not {what}") from None
        if not (value > 0 and math.isfinite(value)):
            raise argparse.ArgumentTypeError(f"must be greater than 0, got {text}")
        return value
    return parse
