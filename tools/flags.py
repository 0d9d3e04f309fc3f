"""Write FLAGS.md: every script's flags (name, choices, default, help), read from the parsers the scripts build.

    python tools/flags.py            # rewrite FLAGS.md
    python tools/flags.py --check    # exit 1 if FLAGS.md is not what the parsers say (tests/test_flags.py runs this)

`--help` shows one script at a time; FLAGS.md shows them side by side, so a user can see which flags a folder has
before copying it, and a reviewer sees every flag or default that a change adds, drops or rewords (the file is
regenerated and diffed). The table is built from argparse's actions, not from `--help`'s text, so it is the same on
every Python version and terminal width.
"""
from __future__ import annotations

import argparse
import contextlib
import runpy
import sys
from collections.abc import Iterator
from pathlib import Path
from unittest import mock

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "FLAGS.md"
# notes_code.py is the notes' own code, kept as written (its flags are the notes', not the repo's)
SCRIPTS = sorted(p.relative_to(ROOT) for pattern in ("[0-9][0-9]_*/*.py", "benchmarks/*.py", "tools/*.py")
                 for p in ROOT.glob(pattern)
                 if p.name != "notes_code.py" and "def main(argv" in p.read_text(encoding="utf-8"))


class _Parsed(Exception):
    """Raised by the patched `parse_args` to hand the script's finished parser back without running the script."""

    def __init__(self, parser: argparse.ArgumentParser) -> None:
        super().__init__()
        self.parser = parser


@contextlib.contextmanager
def _script_imports(folder: Path) -> Iterator[None]:
    """The script's folder first on sys.path, and no cached sibling module (`model`, `train`) from another folder."""
    def drop_siblings() -> None:
        for name, module in list(sys.modules.items()):
            file = getattr(module, "__file__", None) or ""
            if (file.startswith(str(ROOT)) and not file.startswith(str(ROOT / "common")) and "/tests/" not in file
                    and not name.startswith("topic_")):  # tests/util.load's modules stay: tests hold them by name
                del sys.modules[name]

    drop_siblings()
    sys.path.insert(0, str(folder))
    try:
        yield
    finally:
        sys.path.remove(str(folder))
        drop_siblings()


def parser_of(script: Path) -> argparse.ArgumentParser:
    """The parser `script`'s `main` builds: main runs until its first `parse_args`, which stops it."""
    path = ROOT / script

    def stop(parser: argparse.ArgumentParser, *args: object, **kwargs: object) -> None:
        raise _Parsed(parser)

    with _script_imports(path.parent), mock.patch.object(sys, "argv", [str(script)]), \
            mock.patch.object(argparse.ArgumentParser, "parse_args", stop):
        main = runpy.run_path(str(path), run_name="flags")["main"]
        try:
            main([])
        except _Parsed as parsed:
            return parsed.parser
    raise RuntimeError(f"{script}: main() never called parse_args")


def _default(action: argparse.Action) -> str:
    if isinstance(action, (argparse._StoreTrueAction, argparse._StoreFalseAction, argparse.BooleanOptionalAction)):
        return "on" if action.default else "off"
    if action.default is None or action.default is argparse.SUPPRESS:
        return "–"
    if isinstance(action.default, Path) and action.default.is_absolute():
        return str(action.default.relative_to(ROOT))
    if isinstance(action.default, (list, tuple)):
        return " ".join(map(str, action.default))
    return str(action.default)


def _help(parser: argparse.ArgumentParser, action: argparse.Action) -> str:
    """The help text with argparse's `%(default)s`-style fields filled in, as `--help` would show it."""
    if not action.help:
        return ""
    params = {k: v for k, v in vars(action).items() if v is not argparse.SUPPRESS}
    params["prog"] = parser.prog
    if action.choices is not None:
        params["choices"] = ", ".join(map(str, action.choices))
    if isinstance(params.get("default"), Path) and params["default"].is_absolute():
        params["default"] = params["default"].relative_to(ROOT)
    return action.help % params


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def script_table(script: Path) -> str:
    """One script's section: its description's first line, then one row per flag (positionals first)."""
    parser = parser_of(script)
    description = (parser.description or "").strip().splitlines()
    lines = [f"## {script.as_posix()}", ""]
    if description:
        lines += [_cell(description[0]), ""]
    lines += ["| flag | default | help |", "| --- | --- | --- |"]
    for action in parser._actions:  # argparse has no public list of its actions
        if isinstance(action, argparse._HelpAction) or action.help is argparse.SUPPRESS:
            continue
        name = ", ".join(f"`{s}`" for s in action.option_strings) or f"`{action.metavar or action.dest}` (positional)"
        if action.choices is not None:
            name += " {" + ", ".join(map(str, action.choices)) + "}"
        lines.append(f"| {_cell(name)} | {_cell(_default(action))} | {_cell(_help(parser, action))} |")
    return "\n".join(lines) + "\n"


def render() -> str:
    """FLAGS.md's whole text."""
    head = ("# Every script's flags\n\n"
            "Generated by `python tools/flags.py` from the scripts' own parsers (tests/test_flags.py fails when this file "
            "is stale). `python SCRIPT --help` shows the same for one script.\n\n"
            + "".join(f"- [{s.as_posix()}](#{s.as_posix().replace('/', '').replace('.', '')})\n"
                      for s in SCRIPTS) + "\n")
    return head + "\n".join(script_table(s) for s in SCRIPTS)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only compare FLAGS.md with the parsers; exit 1 if stale")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        if OUT.exists() and OUT.read_text(encoding="utf-8") == text:
            return 0
        print(f"{OUT.name} is stale: run python tools/flags.py", file=sys.stderr)
        return 1
    OUT.write_text(text, encoding="utf-8")
    print(f"wrote {OUT} ({len(SCRIPTS)} scripts)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
