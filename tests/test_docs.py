"""The documentation stays true: the MkDocs site builds in strict mode (no broken link or
anchor, every page in the nav), every `modelyard` command and `make` target its code blocks
show exists with the options they give it, and the README stays a front page."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import typer

from modelyard.cli import app

ROOT = Path(__file__).resolve().parents[1]
PAGES = sorted([ROOT / "README.md", *(ROOT / "docs").rglob("*.md")])
FENCE = re.compile(r"^```[^\n]*\n(.*?)^```", re.MULTILINE | re.DOTALL)
README_LIMIT = 8000


def _blocks(page: Path) -> list[str]:
    return FENCE.findall(page.read_text(encoding="utf-8"))


def _commands(text: str, program: str) -> list[list[str]]:
    """Each ``program ...`` command of a code block (after ``&&``, ``|`` or a line start),
    its comment cut off, split as a shell would."""
    found = []
    for line in text.replace("\\\n", " ").splitlines():
        for part in re.split(r"&&|\|\||;|\s\|\s", line.split(" # ", 1)[0]):
            words = part.strip()
            if words.startswith(f"{program} "):
                try:
                    found.append(shlex.split(words)[1:])
                except ValueError:  # an unbalanced quote in prose-like examples
                    found.append(words.split()[1:])
    return found


def test_the_site_builds_strictly(tmp_path: Path) -> None:
    mkdocs = Path(sys.executable).with_name("mkdocs")
    done = subprocess.run(
        [str(mkdocs), "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert (tmp_path / "site" / "benchmarks" / "index.html").is_file()


def test_the_readme_is_a_front_page() -> None:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(text) < README_LIMIT, f"README.md is {len(text)} characters"
    for link in re.findall(r"\]\((docs/[^)#]+)", text):
        assert (ROOT / link).is_file(), link


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_command_in_a_code_block_exists(page: Path) -> None:
    root = typer.main.get_command(app)
    problems = []
    for block in _blocks(page):
        for words in _commands(block, "modelyard"):
            problem = _check(root, words)
            if problem:
                problems.append(f"modelyard {' '.join(words)}: {problem}")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_make_target_in_a_code_block_exists(page: Path) -> None:
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    targets = set(re.findall(r"^([a-z][\w-]*):", makefile, re.MULTILINE))
    for block in _blocks(page):
        for words in _commands(block, "make"):
            assert words[0] in targets, f"make {words[0]}: no such target"


def _check(command: Any, words: list[str]) -> str | None:
    """Why ``words`` is not a command line of ``command`` (None when it is)."""
    while hasattr(command, "commands"):  # a group (typer's own click)
        if not words or words[0].startswith("-"):
            return None if words in ([], ["--help"]) else "a group needs a command"
        name = words[0].split("|")[0]
        sub = command.commands.get(name)
        if sub is None:
            return f"no command '{name}' (has {', '.join(sorted(command.commands))})"
        command, words = sub, words[1:]
    options = {opt for p in command.params for opt in (*p.opts, *p.secondary_opts)}
    options.add("--help")
    for word in words:
        flag = word.split("=", 1)[0]
        if flag.startswith("--") and flag not in options:
            return f"no option {flag} (has {', '.join(sorted(options))})"
    return None
