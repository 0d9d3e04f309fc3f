"""Bad input is a one-line message and exit code 2, never a traceback (the guide's "safe" rule)."""
from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from typing import Any


RANK_GRACE_S = 10.0  # long enough for rank 0 to reach the same error on a loaded machine


class UserError(Exception):
    """Something the user handed us is wrong; the message is the whole story, in one line."""


def first_line(exc: BaseException) -> str:
    """The first non-empty line of an exception's message (torch's explain at length), or its type's name when the
    message is empty, so a one-line `UserError` can quote why a library call failed without an IndexError of its own."""
    return next((line.strip() for line in str(exc).splitlines() if line.strip()), type(exc).__name__)


class Interrupted(Exception):
    """Ctrl-C during training; the message says where, what the last checkpoint holds and how to resume."""


def _report(message: str, rank: str, code: int, lead: str = "") -> None:
    """Print `error: message` and exit. Under torchrun every rank usually fails alike; a rank other than 0 first gives
    rank 0 time to say it and exit, after which torchrun stops this process. Still alive means the error was this
    rank's own (a loss that diverged on its shard), and it is printed with the rank, never swallowed."""
    if rank != "0":
        time.sleep(RANK_GRACE_S)
        lead += f"rank {rank}: "
    print(f"{lead}error: {message}", file=sys.stderr)
    sys.exit(code)


def cli_main(main: Callable[[], Any]) -> None:
    """Run a script's `main()`; a `UserError` becomes `error: <message>` on stderr and exit code 2, a diverged run
    (`FloatingPointError` from the loop) one line and exit code 1, Ctrl-C one line and exit code 130 (the shell's
    128 + SIGINT). Under torchrun rank 0 speaks for all (`_report`), so a bad flag is one line above torchrun's own
    failure report, not one per process, and rank 0's exit code 2 is the root cause it names. Leaves a torchrun process
    group cleanly."""
    from .distributed import cleanup

    rank = os.environ.get("RANK", "0")  # torchrun's; every rank validates the same flags, so rank 0 speaks for all
    try:
        main()
    except UserError as exc:
        _report(str(exc), rank, 2)
    except FloatingPointError as exc:
        _report(str(exc), rank, 1, lead="\n")  # own line: a progress bar may hold the current one
    except Interrupted as exc:
        print(f"\n{exc}", file=sys.stderr)
        sys.exit(130)
    except KeyboardInterrupt:
        print("\ninterrupted before training started; nothing was written", file=sys.stderr)
        sys.exit(130)
    finally:
        cleanup()
