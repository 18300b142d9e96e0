"""The documentation holds together: every relative link (and its `#anchor`) in the
README, docs/ and benchmarks/README.md resolves, and the README stays a short first page
that opens with the two set-up commands CI runs."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
MAX_README_LINES = 200
SETUP = (
    "```bash\npip install . && nst-tui run\n"
    "pip install -e '.[test]' && python -m pytest -q -n 2\n```\n"
)

LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
REFERENCE = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+.*)?$")
CODE_SPAN = re.compile(r"(`+).*?\1")
HEADING = re.compile(r"^\s{0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
EXTERNAL = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")  # https:, mailto:, ...


def documents() -> list[Path]:
    return [README, *sorted((ROOT / "docs").glob("*.md")), ROOT / "benchmarks" / "README.md"]


def prose_lines(text: str) -> list[tuple[int, str]]:
    """(line number, line) outside fenced code blocks, with inline code spans removed."""
    out = []
    fence = ""
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.lstrip()
        if fence:
            if stripped.startswith(fence):
                fence = ""
            continue
        if stripped.startswith(("```", "~~~")):
            fence = stripped[:3]
            continue
        if line.startswith("    ") and not stripped.startswith(("-", "|", "*")):
            continue  # an indented code block (or a wrapped list item: no links there)
        out.append((number, CODE_SPAN.sub("", line)))
    return out


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: its text, lower case, punctuation dropped,
    spaces turned into hyphens."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link: its text
    text = text.replace("`", "").replace("*", "").lower()
    kept = "".join(c for c in text if c.isalnum() or c in "-_ ")
    return kept.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """Every heading's anchor; a repeated one gets -1, -2, ... as on GitHub."""
    seen: dict[str, int] = {}
    out = set()
    for _, line in prose_lines(path.read_text(encoding="utf-8")):
        match = HEADING.match(line)
        if not match:
            continue
        base = slug(match.group(2))
        n = seen.get(base, 0)
        seen[base] = n + 1
        out.add(base if n == 0 else f"{base}-{n}")
    return out


def links(path: Path) -> list[tuple[int, str]]:
    found = []
    for number, line in prose_lines(path.read_text(encoding="utf-8")):
        found += [(number, m.group(1)) for m in LINK.finditer(line)]
        ref = REFERENCE.match(line)
        if ref:
            found.append((number, ref.group(1)))
    return found


def broken_links(path: Path) -> list[str]:
    """Each relative link of `path` that names no file, or an anchor no heading makes."""
    problems = []
    for number, target in links(path):
        if EXTERNAL.match(target):
            continue
        file_part, _, anchor = target.partition("#")
        resolved = (path.parent / file_part).resolve() if file_part else path
        shown = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path.name
        where = f"{shown}:{number}: {target}"
        if not resolved.exists():
            problems.append(f"{where}: no such file")
        elif anchor and resolved.suffix == ".md" and anchor not in anchors(resolved):
            problems.append(f"{where}: no heading makes #{anchor}")
    return problems


@pytest.mark.parametrize("path", documents(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_resolves(path: Path) -> None:
    assert path.is_file(), f"{path} is missing"
    assert broken_links(path) == []


def test_the_pages_are_linked_from_the_readme() -> None:
    targets = {target.partition("#")[0] for _, target in links(README)}
    for page in documents()[1:]:
        assert str(page.relative_to(ROOT)) in targets, f"the README does not link {page.name}"


def test_readme_is_short_and_opens_with_the_two_commands() -> None:
    text = README.read_text(encoding="utf-8")
    assert len(text.splitlines()) <= MAX_README_LINES
    title, _, rest = text.partition("\n\n")
    assert title.startswith("# ")
    assert rest.startswith(SETUP), "the first block must be the two set-up commands"


def test_readme_keeps_the_keys_between_its_markers() -> None:
    lines = README.read_text(encoding="utf-8").splitlines()
    assert lines.count("<!-- keys:begin -->") == 1
    assert lines.count("<!-- keys:end -->") == 1
    begin, end = lines.index("<!-- keys:begin -->"), lines.index("<!-- keys:end -->")
    table = lines[begin + 1 : end]
    assert table[0].startswith("| key |")
    assert any("`ctrl+r`" in row for row in table)


def test_a_broken_link_is_caught(tmp_path: Path) -> None:
    """The checker itself: a missing file, a missing anchor and a good link."""
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "other.md").write_text("# Other page\n\n## A section (2026-12-06, CPU)\n")
    page = docs / "page.md"
    page.write_text(
        "# Page\n\n"
        "[good](other.md#a-section-2026-12-06-cpu) [self](#page)\n"
        "[gone](missing.md) ![gone too](../nowhere.png)\n"
        "[bad anchor](other.md#no-such-section)\n"
        "`[in code](missing-too.md)`\n\n"
        "```\n[in a block](missing-three.md)\n```\n"
    )
    problems = broken_links(page)
    assert len(problems) == 3, problems
    assert "missing.md: no such file" in problems[0]
    assert "../nowhere.png: no such file" in problems[1]
    assert "no heading makes #no-such-section" in problems[2]
