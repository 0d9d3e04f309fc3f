"""Bad input is a one-line message and exit code 2, never a traceback (the guide's "safe" rule)."""
from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any


class UserError(Exception):
    """Something the user handed us is wrong; the message is the whole story, in one line."""


class Interrupted(Exception):
    """Ctrl-C during training; the message says where, what the last checkpoint holds and how to resume."""


def cli_main(main: Callable[[], Any]) -> None:
    """Run a script's `main()`; a `UserError` becomes `error: <message>` on stderr and exit code 2, a diverged run
    (`FloatingPointError` from the loop) one line and exit code 1, Ctrl-C one line and exit code 130 (the shell's
    128 + SIGINT). Leaves a torchrun process group cleanly."""
    from .distributed import cleanup

    try:
        main()
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    except FloatingPointError as exc:
        print(f"\nerror: {exc}", file=sys.stderr)  # own line: a progress bar may hold the current one
        sys.exit(1)
    except Interrupted as exc:
        print(f"\n{exc}", file=sys.stderr)
        sys.exit(130)
    except KeyboardInterrupt:
        print("\ninterrupted before training started; nothing was written", file=sys.stderr)
        sys.exit(130)
    finally:
        cleanup()
