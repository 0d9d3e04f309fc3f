"""Mutation score per file from the last `mutmut run`, as a markdown table (see tests/README.md, "Mutation testing").

    python tests/mutation_report.py                    # the table
    python tests/mutation_report.py --list survived    # the names of the mutants with that status, one a line
    python tests/mutation_report.py --names tests/mutation_sample.txt   # only these mutants (the sample)

Run from the repository root, after `mutmut run`: it reads mutmut's results under mutants/ (the `.meta` files) through
mutmut's own classes, so the counts are the ones `mutmut results` shows. Score = killed / mutants: a mutant no test
reaches ("no tests"), that ran out of time ("timeout", usually an endless loop) or was not run yet ("not checked", after
`mutmut run NAMES` or a stopped run) does not count as killed.
"""
from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

from mutmut.configuration import config
from mutmut.mutation.data import SourceFileMutationData
from mutmut.stats import status_by_exit_code
from mutmut.utils.file_utils import walk_mutatable_files

COLUMNS = ["killed", "survived", "no tests", "timeout"]  # any other status (suspicious, segfault, ...) is "other"


def results() -> dict[str, dict[str, str]]:
    """{source file: {mutant name: status}} for every file mutmut mutates, in path order."""
    by_file = {}
    for path in sorted(walk_mutatable_files(), key=str):
        data = SourceFileMutationData(path=path)
        data.load()
        by_file[str(path)] = {name: status_by_exit_code[code] for name, code in sorted(data.exit_code_by_key.items())}
    return by_file


def score(killed: int, total: int) -> str:
    return f"{100 * killed / total:.0f}%" if total else "–"


def row(name: str, counts: Counter) -> str:
    total = sum(counts.values())
    other = total - sum(counts[c] for c in COLUMNS) - counts["not checked"]
    cells = [name, total, *(counts[c] for c in COLUMNS), other, counts["not checked"], score(counts["killed"], total)]
    return "| " + " | ".join(map(str, cells)) + " |"


def table(by_file: dict[str, dict[str, str]]) -> str:
    """One row per file with at least one mutant tested; files with no mutant, or none tested yet, in notes below."""
    lines = ["| file | mutants | killed | survived | no tests | timeout | other | not checked | score |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    totals: Counter = Counter()
    empty, untested = [], []
    for path, statuses in by_file.items():
        counts = Counter(statuses.values())
        if not statuses:
            empty.append(path)
        elif counts["not checked"] == len(statuses):
            untested.append(path)
        else:
            totals.update(counts)
            lines.append(row(path, counts))
    lines.append(row("**all above**", totals))
    if untested:
        lines += ["", "Not tested yet: " + ", ".join(untested)]
    if empty:
        lines += ["", "No mutants in: " + ", ".join(empty)]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--list", metavar="STATUS",
                        help="print the names of the mutants with this status (killed, survived, 'no tests', timeout, ...)")
    parser.add_argument("--names", type=Path, default=None, metavar="FILE",
                        help="count only the mutants named in FILE, one a line (e.g. tests/mutation_sample.txt); names "
                             "that no longer exist (the function was renamed or removed) are counted below the table")
    args = parser.parse_args(argv)
    if not Path("mutants").is_dir():
        print("no mutants/ here: run `mutmut run` from the repository root first", file=sys.stderr)
        return 1
    config()  # reads pyproject.toml's [tool.mutmut] from the current directory
    by_file = results()
    gone = []
    if args.names is not None:
        wanted = set(args.names.read_text().split())
        by_file = {path: {n: st for n, st in statuses.items() if n in wanted} for path, statuses in by_file.items()}
        gone = sorted(wanted - {n for statuses in by_file.values() for n in statuses})
    if args.list:
        for statuses in by_file.values():
            for name, status in statuses.items():
                if status == args.list:
                    print(name)
    else:
        print(table({path: statuses for path, statuses in by_file.items() if statuses or args.names is None}))
        if gone:
            print(f"\n{len(gone)} named mutants no longer exist: " + ", ".join(gone))
    return 0


if __name__ == "__main__":
    sys.exit(main())
