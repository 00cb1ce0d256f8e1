"""CLiKA's conductivity level: after fine-tuning on fictional facts, does a fact stated in English only become
available in language X? XRR = accuracy on X type-1 questions; it counts only when the gate subsets (the name
translations, English type 0 and 1, X type 0: everything the model was taught) reach the gate accuracy."""
from __future__ import annotations

GATE = ("translation", "en_type0", "en_type1", "x_type0")
MEASURED = "x_type1"


def answered(output: str, expected: str) -> bool:
    """CLiKA's check: the answer names the expected continent (or, for a translation, the expected name)."""
    return expected.casefold() in output.casefold()


def score_conductivity(outputs: list[str], items: list[dict], gate: float) -> dict:
    """Accuracy per subset, XRR and the gate; per_item holds the X type-1 items alone (what XRR's interval
    resamples), every subset's outputs are kept under `subsets`."""
    by_subset: dict[str, list[int]] = {}
    kept: dict[str, dict[str, list[str]]] = {}
    for out, item in zip(outputs, items):
        by_subset.setdefault(item["subset"], []).append(int(answered(out, item["tgt"])))
        subset = kept.setdefault(item["subset"], {"id": [], "output": []})
        subset["id"].append(item["id"])
        subset["output"].append(out)
    acc = {name: sum(v) / len(v) for name, v in by_subset.items()}
    missing = [name for name in (*GATE, MEASURED) if name not in acc]
    if missing:
        raise ValueError(f"conductivity test items lack the subsets {missing}")
    passed = all(acc[name] >= gate for name in GATE)
    return {
        "metrics": {"xrr": acc[MEASURED], "gate_passed": float(passed),
                    "gate_min": min(acc[name] for name in GATE),
                    **{f"{name}_accuracy": acc[name] for name in GATE}},
        "per_item": {"correct": by_subset[MEASURED]},
        "subsets": {name: {"n": len(v), "accuracy": acc[name], "correct": v, **kept[name]}
                    for name, v in by_subset.items()},
    }
