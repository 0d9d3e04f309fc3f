"""The 笔记对照 (notes map) section of every folder README names code as `path::name`; each name must be defined in
that file (a def, a class or a module-level assignment), so the map cannot point at code that was renamed or moved."""
from __future__ import annotations

import ast
import re

import pytest

from util import ROOT

FOLDERS = sorted(p.name for p in ROOT.iterdir() if re.fullmatch(r"\d\d_\w+", p.name) and (p / "README.md").is_file())


def notes_map(readme: str) -> str:
    """The text of the README's 笔记对照 section (up to the next `## ` heading), or '' when it has none."""
    found = re.search(r"^## 笔记对照.*?$(.*?)(?=^## |\Z)", readme, re.MULTILINE | re.DOTALL)
    return found[1] if found else ""


def defined_names(path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names |= {t.id for t in node.targets if isinstance(t, ast.Name)}
    return names


def test_notes_map_parser_finds_the_section_and_its_references() -> None:
    readme = "# x\n## 笔记对照（中文）\n| a | `01_dataset/dataset.py::MyData` |\n## Next\n`b.py::gone`\n"
    assert re.findall(r"`([\w/.]+\.py)::(\w+)`", notes_map(readme)) == [("01_dataset/dataset.py", "MyData")]
    assert notes_map("# x\n## Other\n") == ""


@pytest.mark.parametrize("folder", FOLDERS)
def test_every_name_in_the_notes_map_exists(folder: str) -> None:
    section = notes_map((ROOT / folder / "README.md").read_text(encoding="utf-8"))
    refs = re.findall(r"`([\w/.]+\.py)::(\w+)`", section)
    assert section, f"{folder}/README.md has no 笔记对照 section"
    assert refs, f"{folder}: the 笔记对照 section names no code"
    missing = [f"{path}::{name}" for path, name in refs
               if not (ROOT / path).is_file() or name not in defined_names(ROOT / path)]
    assert not missing, f"{folder}/README.md 笔记对照 names code that does not exist: {missing}"
