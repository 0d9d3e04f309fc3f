"""Leave nothing behind when a step that writes fails: a download that stops half-way must not leave an empty data
folder or a partial archive that a later run mistakes for data."""
from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def removed_on_failure(folder: Path) -> Iterator[None]:
    """On an exception inside the block, remove what the block added: `folder` (and the parents it needed) if they
    did not exist before, else only the entries of `folder` that are new. The exception is re-raised."""
    folder = Path(folder)
    created = None
    probe = folder
    while not probe.exists() and probe != probe.parent:
        created, probe = probe, probe.parent
    before = set(folder.iterdir()) if folder.is_dir() else set()
    try:
        yield
    except BaseException:
        if created is not None:
            shutil.rmtree(created, ignore_errors=True)
        elif folder.is_dir():
            for entry in set(folder.iterdir()) - before:
                if entry.is_dir() and not entry.is_symlink():
                    shutil.rmtree(entry, ignore_errors=True)
                else:
                    entry.unlink(missing_ok=True)
        raise
