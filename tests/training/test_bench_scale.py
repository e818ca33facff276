"""``engage bench scale``: every step measured as a subprocess, into the JSON the issue fixes."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from training.bench.scale import STEPS, table
from training.bench.tree_memory import run_measured


def test_run_measured_sees_the_children():
    code = ("import subprocess, sys; b = bytearray(150_000_000); "
            "subprocess.run([sys.executable, '-c', 'import time; b = bytearray(120_000_000); time.sleep(1.5)']); "
            "print('{\"done\": 1}')")
    result = run_measured([sys.executable, "-c", code])
    assert result["ok"] and result["output"] == {"done": 1}
    assert result["peak_memory_mb"] > 260 and 140 < result["peak_process_mb"] < 260
    assert result["processes"] == 2
    failed = run_measured([sys.executable, "-c", "import sys; sys.exit('no such world')"])
    assert not failed["ok"] and failed["returncode"] == 1 and "no such world" in failed["error"]


@pytest.mark.slow
def test_bench_scale_writes_every_step(tmp_path):
    out = tmp_path / "scale.json"
    # 60 days: too short a history to train churn, so the training steps fail fast and say why; the bench
    # still measures and reports every step
    run = subprocess.run([sys.executable, "-m", "training.cli", "bench", "scale", "--customers", "300", "--days",
                          "60", "--json", str(out), "--work", str(tmp_path / "work"), "--no-local-features"],
                         capture_output=True, text=True, env={**os.environ, "PYTHONPATH": os.getcwd()})
    assert run.returncode == 0, run.stderr[-2000:]
    result = json.loads(out.read_text())
    assert list(result["steps"]) == list(STEPS)
    for name, step in result["steps"].items():
        assert step["seconds"] > 0 and step["peak_memory_mb"] > 0 and step["peak_process_mb"] > 0, name
        assert step["ok"] or step["error"], name
    assert result["steps"]["simulate"]["ok"] and result["steps"]["partition"]["ok"]
    assert "not enough history" in result["steps"]["train_churn"]["error"]
    assert result["customers"] == 300 and result["touchpoints"] > 0 and result["machine"]["cores"] >= 1
    assert len(result["load_average"]) == 3
    assert "train_policy" in table(result) and "train_policy" in run.stderr
    assert (tmp_path / "work" / "c300" / "logs" / "train_churn.log").is_file()
