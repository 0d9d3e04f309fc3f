"""benchmarks/end_to_end_gpu.py, which gpu.sh runs once per lent GPU: its CPU path must keep working between those
runs, and a variant that fails must leave a FAILED row while the other rows are still measured."""
import importlib.util
import math
import sys

from util import ROOT


def test_end_to_end_runs_tiny_on_a_cpu_and_keeps_a_failed_variant_as_a_row(capsys, monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    spec = importlib.util.spec_from_file_location("end_to_end_gpu", ROOT / "benchmarks" / "end_to_end_gpu.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    rows = bench.main(["--device", "cpu", "--train-size", "128", "--test-size", "32", "--epochs", "1",
                       "--variant=--cuda-graph"])
    assert [r["run"] for r in rows] == ["notes' gpu版本 loop (+ Normalize)", "03_cifar_train/train.py (defaults)",
                                        "03_cifar_train/train.py --cuda-graph",
                                        "ceiling: bare loop, one device batch (eager)"]
    assert rows[2]["error"] == "UserError: --cuda-graph needs CUDA (--device cpu is cpu)"
    assert all(r["seconds"] > 0 for r in rows if "error" not in r)
    assert rows[3]["images"] == math.ceil(128 / 64) * 64  # the ceiling trains as many steps as one epoch has
    out = capsys.readouterr().out
    assert "| 03_cifar_train/train.py --cuda-graph | FAILED | UserError: --cuda-graph needs CUDA" in out
    assert "| ceiling: bare loop, one device batch (eager) |" in out and "÷ eager ceiling" in out
    sys.modules.pop("end_to_end_gpu", None)
