"""The README is the front door and docs/ the reference: both stay true to the tree.

Relative links and ``#anchors`` resolve, every ``docs/*.md`` is reachable from the README, the
README stays short, and the ``make`` targets and ``hundi`` commands it names exist.
"""

from __future__ import annotations

import re
from pathlib import Path

import click
import pytest

from hundi.cli import main as hundi_cli

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DOCS = sorted((ROOT / "docs").glob("*.md"))
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^\s*(```|~~~)")


def prose(text: str) -> str:
    """``text`` with fenced code blocks blanked (links and headings there are not real)."""
    lines, fenced = [], False
    for line in text.splitlines():
        if FENCE.match(line):
            fenced = not fenced
            lines.append("")
        else:
            lines.append("" if fenced else line)
    return "\n".join(lines)


def anchors(path: Path) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces → '-', repeats -N."""
    seen: dict[str, int] = {}
    for line in prose(path.read_text()).splitlines():
        heading = re.match(r"^#{1,6}\s+(.*)$", line)
        if heading:
            slug = re.sub(r"[^\w\- ]", "", heading.group(1).strip().lower()).replace(" ", "-")
            seen[slug] = seen.get(slug, -1) + 1
    return {s if i == 0 else f"{s}-{i}" for s, n in seen.items() for i in range(n + 1)}


def local_links(path: Path) -> list[str]:
    return [t for t in LINK.findall(prose(path.read_text())) if not re.match(r"^[a-z]+:", t)]


@pytest.mark.parametrize("page", [README, *DOCS], ids=lambda p: p.name)
def test_links_and_anchors_resolve(page: Path) -> None:
    broken = []
    for target in local_links(page):
        file_part, _, fragment = target.partition("#")
        dest = (page.parent / file_part).resolve() if file_part else page
        if not dest.exists():
            broken.append(f"missing {target}")
        elif fragment and dest.suffix == ".md" and fragment not in anchors(dest):
            broken.append(f"no heading #{fragment} in {dest.name}")
    assert not broken, f"{page.name}: {broken}"


def test_every_doc_is_linked_from_the_readme() -> None:
    linked = {(ROOT / t.partition("#")[0]).resolve() for t in local_links(README)}
    assert [d.name for d in DOCS if d.resolve() not in linked] == []


def test_readme_stays_a_front_door() -> None:
    assert len(README.read_text().splitlines()) <= 210


def test_make_targets_named_in_the_readme_exist() -> None:
    makefiles = [ROOT / "Makefile", *ROOT.glob("deploy/*/*.mk")]  # Makefile includes these
    text = "\n".join(path.read_text() for path in makefiles)
    targets = set(re.findall(r"^([\w-]+)\s*:", text, re.M))
    named = set(re.findall(r"\bmake ([a-z][\w-]*)", README.read_text()))
    assert named and named <= targets, sorted(named - targets)


def test_hundi_commands_named_in_the_readme_exist() -> None:
    named = set(re.findall(r"\bhundi ([a-z]+)\b", README.read_text()))
    assert named, "the README names no hundi command"
    commands = set(hundi_cli.list_commands(click.Context(hundi_cli)))  # lazy: not .commands
    assert named <= commands, sorted(named - commands)
