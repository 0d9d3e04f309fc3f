import os
import sys
from pathlib import Path

# One torch thread per test process (subprocesses inherit it): the suite's inputs are tiny, where a second OpenMP thread
# buys little, and on a busy 2-core machine it costs a great deal (every parallel op waits for a descheduled thread).
os.environ.setdefault("OMP_NUM_THREADS", "1")

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

if "MUTANT_UNDER_TEST" in os.environ:  # set (maybe empty) only under `mutmut run`: see tests/mutmut_support.py
    from mutmut_support import pytest_sessionfinish  # noqa: F401  (the import also patches mutmut's trampolines)
