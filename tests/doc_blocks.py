"""The docs' code blocks and the files under docs/snippets/ they are copies of.

Pages show plain Markdown fenced blocks, so they read the same on a code forge as on the
built site. The line right above a Python block says where it comes from:

    <!-- snippet: docs/snippets/quickstart/jobs.py -->
    <!-- snippet: docs/snippets/quickstart/models.py lines 1-8 -->
    <!-- untested: the reason this block has no file -->

tests/integration/test_docs.py checks that each snippet block equals its file (or those lines of it)
and runs the files; ``python3 dev.py docs sync`` copies the files into the blocks. Needs
only the standard library, so dev.py can run it before any venv exists.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYTHON = {"python", "py", "pycon"}
MARKER = re.compile(
    r"^<!-- (?:snippet: (?P<path>\S+?)(?: lines (?P<first>\d+)-(?P<last>\d+))?"
    r"|untested: (?P<reason>\S.*?)) -->$"
)
FENCE = re.compile(r"^```(?P<language>\w*)")


@dataclass
class Block:
    page: Path
    line: int  # 1-based number of the opening fence's line
    language: str
    body: str  # the lines between the fences, each ending in "\n"
    marker: re.Match[str] | None  # the marker line right above the opening fence

    @property
    def where(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"

    @property
    def source(self) -> Path | None:
        return ROOT / self.marker["path"] if self.marker and self.marker["path"] else None

    def expected(self) -> str:
        """The text of the block's file (or of its line range)."""
        assert self.marker and self.source
        text = self.source.read_text()
        if self.marker["first"]:
            lines = text.splitlines(keepends=True)
            return "".join(lines[int(self.marker["first"]) - 1 : int(self.marker["last"])])
        return text


def pages() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def blocks(page: Path) -> list[Block]:
    lines = page.read_text().splitlines(keepends=True)
    found, index = [], 0
    while index < len(lines):
        opening = FENCE.match(lines[index])
        if not opening:
            index += 1
            continue
        closing = (i for i in range(index + 1, len(lines)) if lines[i].rstrip() == "```")
        end = next(closing, None)
        if end is None:
            raise ValueError(f"{page}:{index + 1}: a code block that is never closed")
        marker = MARKER.match(lines[index - 1].rstrip("\n")) if index else None
        body = "".join(lines[index + 1 : end])
        found.append(Block(page, index + 1, opening["language"], body, marker))
        index = end + 1
    return found


def sync(page: Path) -> bool:
    """Copy every snippet block's file into the page; True if the page changed."""
    lines = page.read_text().splitlines(keepends=True)
    # From the last block up, so earlier blocks' line numbers stay valid.
    for block in reversed(blocks(page)):
        if block.source is None:
            continue
        body_lines = block.body.count("\n")
        lines[block.line : block.line + body_lines] = [block.expected()]
    text = "".join(lines)
    changed = text != page.read_text()
    if changed:
        page.write_text(text)
    return changed


def main() -> None:
    changed = [page.relative_to(ROOT).as_posix() for page in pages() if sync(page)]
    print("updated: " + ", ".join(changed) if changed else "every snippet block is up to date")


if __name__ == "__main__":
    main()
