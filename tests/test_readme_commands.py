"""Every `python NN_topic/script.py ...` command in a README's bash blocks must run as written on a fresh clone: its
script exists and its flags parse (checked for all of them, without running); the offline training commands
(`--data synthetic` or the folder's synthetic default, no download, no GPU) also run, shrunk to one batch."""
from __future__ import annotations

import argparse
import re
import shlex

import pytest

from util import ROOT, load

READMES = [ROOT / "README.md", *sorted(ROOT.glob("[0-9][0-9]_*/README.md"))]


def readme_commands() -> list[tuple[str, list[str]]]:
    """(README, argv) for each python command of its ```bash blocks: continuations joined, `# comments` and the
    `[optional]` / `...` notation of the docs removed."""
    found = []
    for readme in READMES:
        for block in re.findall(r"```bash\n(.*?)```", readme.read_text(encoding="utf-8"), re.DOTALL):
            for line in block.replace("\\\n", " ").splitlines():
                if not re.match(r"\s*python \d\d_\w+/\w+\.py", line):
                    continue  # other tools, and `python -c "..."` one-liners
                line = re.sub(r"\s#.*$", "", line).strip()
                words = shlex.split(re.sub(r"\[[^\]]*\]|\.\.\.", "", line))
                found.append((readme.relative_to(ROOT).as_posix(), words[1:]))
    return found


COMMANDS = readme_commands()
OFFLINE = [(r, argv) for r, argv in COMMANDS if argv[0].endswith("/train.py") and "--download" not in argv
           and "cuda" not in argv and "--resume" not in argv and "--weights" not in argv
           and "--weights-backbone" not in argv and "--data" in argv and argv[argv.index("--data") + 1] == "synthetic"]


class Parsed(Exception):
    """Raised by the patched parser once the command line parsed: the script stops before doing any work."""


def parses(script: str, argv: list[str], monkeypatch) -> bool:
    folder, stem = script.split("/")[0], script.split("/")[1].removesuffix(".py")
    module = load(folder, stem)
    real_args, real_known = argparse.ArgumentParser.parse_args, argparse.ArgumentParser.parse_known_args
    inside = []

    def parse_args_then_stop(self, args=None, namespace=None):
        inside.append(True)
        real_args(self, args, namespace)  # exits 2 on a flag the script does not have
        raise Parsed

    def parse_known_then_stop(self, args=None, namespace=None):
        result = real_known(self, args, namespace)
        if not inside:  # a script's own parse_known_args (not the one inside parse_args)
            raise Parsed
        return result

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", parse_args_then_stop)
    monkeypatch.setattr(argparse.ArgumentParser, "parse_known_args", parse_known_then_stop)
    if not hasattr(module, "main"):
        return True  # a module whose __main__ block takes no arguments (05's model.py printout)
    with pytest.raises(Parsed):
        module.main(argv)
    return True


def test_the_commands_are_found_and_cover_every_folder() -> None:
    assert len(COMMANDS) >= 50 and len(OFFLINE) >= 6
    assert {argv[0].split("/")[0] for _, argv in COMMANDS} >= {p.parent.name for p in READMES[1:]}


@pytest.mark.parametrize("readme, argv", COMMANDS, ids=[f"{r}:{' '.join(a)[:60]}" for r, a in COMMANDS])
def test_readme_command_script_exists_and_its_flags_parse(readme: str, argv: list[str], monkeypatch) -> None:
    assert (ROOT / argv[0]).is_file(), f"{readme}: {argv[0]} does not exist"
    assert parses(argv[0], argv[1:], monkeypatch)


def test_a_wrong_flag_fails_the_parse_check(monkeypatch, capsys) -> None:
    with pytest.raises(SystemExit) as info:
        parses("03_cifar_train/train.py", ["--no-such-flag"], monkeypatch)
    assert info.value.code == 2 and "--no-such-flag" in capsys.readouterr().err


@pytest.mark.parametrize("readme, argv", OFFLINE, ids=[f"{r}:{' '.join(a)[:60]}" for r, a in OFFLINE])
def test_offline_readme_training_commands_run_shrunk(readme: str, argv: list[str], tmp_path) -> None:
    folder = argv[0].split("/")[0]
    args = [a for a in argv[1:]]
    if "--output-dir" in args:
        del args[args.index("--output-dir"):args.index("--output-dir") + 2]
    shrunk = ["--synthetic-size", "32", "--epochs", "1", "--limit-batches", "1", "--workers", "0"]
    for flag in ("--synthetic-size", "--epochs"):
        if flag in args:
            del args[args.index(flag):args.index(flag) + 2]
    summary = load(folder, "train").main([*args, *shrunk, "--output-dir", str(tmp_path / "run")])
    assert (tmp_path / "run" / "last.pth").is_file() and summary["metrics"]
