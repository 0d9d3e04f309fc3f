"""FLAGS.md is what the parsers say, and every flag of every script explains itself in `--help`."""
import argparse
import re

from util import ROOT, load

flags = load("tools", "flags")


def test_flags_md_is_current_and_every_flag_has_a_help_with_words():
    text = flags.render()
    assert (ROOT / "FLAGS.md").read_text(encoding="utf-8") == text, "FLAGS.md is stale: run python tools/flags.py"
    bare = []
    for row in (line for line in text.splitlines() if line.startswith("| `")):
        name, _, help_text = (cell.strip() for cell in re.split(r"(?<!\\)\|", row)[1:-1])
        if len(re.sub(r"\(default[^)]*\)", "", help_text).strip()) < 8:
            bare.append(name)
    assert not bare, f"flags without a help text: {bare}"


def test_every_train_py_has_the_shared_flags_with_one_meaning():
    shared = ("--device", "--data", "--data-path", "--output-dir", "--epochs", "--batch-size", "--lr", "--resume",
              "--test-only", "--overwrite", "--seed", "--workers", "--amp", "--download")
    helps: dict[str, set[str]] = {flag: set() for flag in shared}
    trains = [s for s in flags.SCRIPTS if s.name == "train.py"]
    assert len(trains) == 9
    for script in trains:
        parser = flags.parser_of(script)
        options = {s: a for a in parser._actions for s in a.option_strings}
        missing = [f for f in shared if f not in options]
        assert not missing, f"{script}: no {missing}"
        for flag in ("--device", "--resume", "--test-only", "--overwrite", "--amp"):
            helps[flag].add(flags._help(parser, options[flag]))
    # the flags that cannot depend on the folder are worded once (common/cli.py), not per folder
    assert all(len(texts) == 1 for flag, texts in helps.items() if texts), helps


def test_defaults_render_as_help_shows_them():
    parser = argparse.ArgumentParser(prog="x")
    on = parser.add_argument("--aux", action=argparse.BooleanOptionalAction, default=True, help="aux (default: on)")
    off = parser.add_argument("--amp", action="store_true")
    listed = parser.add_argument("--it", type=int, nargs="+", default=[0, 5], help="iterations %(default)s")
    assert (flags._default(on), flags._default(off), flags._default(listed)) == ("on", "off", "0 5")
    assert flags._help(parser, listed) == "iterations [0, 5]"


def test_every_parser_keeps_its_examples_and_parses_numbers_as_numbers():
    """A multi-line description (the usage examples) keeps its line breaks in --help, and a flag with a numeric default
    converts what is typed to that type (without `type=`, `--alpha 0.3` would arrive as the string "0.3")."""
    untyped = []
    for script in flags.SCRIPTS:
        parser = flags.parser_of(script)
        if "\n" in (parser.description or "").strip():
            assert parser.formatter_class is argparse.RawDescriptionHelpFormatter, script
        for action in parser._actions:
            default = action.default
            if isinstance(default, (int, float)) and not isinstance(default, bool) and action.nargs != 0 \
                    and action.type is not type(default) and not (action.type is float and isinstance(default, int)):
                untyped.append(f"{script}: {action.option_strings}")
    assert not untyped
