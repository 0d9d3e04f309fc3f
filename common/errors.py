"""Bad input is a one-line message and exit code 2, never a traceback (the guide's "safe" rule)."""
from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any


class UserError(Exception):
    """Something the user handed us is wrong; the message is the whole story, in one line."""


def cli_main(main: Callable[[], Any]) -> None:
    """Run a script's `main()`; a `UserError` becomes `error: <message>` on stderr and exit code 2, a diverged run
    (`FloatingPointError` from the loop) one line and exit code 1. Leaves a torchrun process group cleanly."""
    from .distributed import cleanup

    try:
        main()
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    except FloatingPointError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(1)
    finally:
        cleanup()
