"""bench/gpu.py in its CPU mode: the script a GPU session runs, end to end on the tiny model."""
import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_tiny_gpu_bench_writes_a_row_per_arm(tmp_path):
    """Our padding-free sft and cpt arms, each beside plain TRL on the same examples, and decoding: each row
    on disk, the arm's ledger agreeing with TRL's own token count (padding-free batches counted from the
    sequence boundaries, no attention mask), and decoding every row to its full length."""
    out = tmp_path / "bench"
    subprocess.run([sys.executable, str(REPO / "bench" / "gpu.py"), "--tiny", "--out", str(out),
                    "--arms", "sft-padding-free,cpt"], check=True, cwd=REPO)
    rows = {p.stem: json.loads(p.read_text()) for p in (out / "rows").glob("*.json")}
    assert set(rows) == {"sft-padding-free", "cpt", "decode"}
    for arm in ("sft-padding-free", "cpt"):
        assert "error" not in rows[arm], rows[arm]
        assert rows[arm]["tokens"] == rows[arm]["plain_tokens"] > 0
        assert rows[arm]["tokens_per_s"] > 0 and rows[arm]["ratio"] > 0 and rows[arm]["steps_ratio"] > 0
        # DeepSpeed's setup is outside the steps' clock
        assert 0 < rows[arm]["steps_s"] < rows[arm]["wall_s"]
    assert rows["decode"]["tokens"] == 8 * 8   # SIZES["tiny"]: 8 prompts, 8 new tokens each
    table = (out / "table.md").read_text()
    assert "| sft-padding-free |" in table and "| cpt |" in table and "decoding:" in table
