"""The README's shell examples as steps: a command and the output the README shows.

Conventions (the README's "Contributing" section says the same):

- every ```sh block runs, in order, in one bash session (variables carry over),
  against a fresh server; ``localhost:9090`` is rewritten to the test's port;
- the comment lines ``# => ...`` right after a command are its output; ``...``
  matches anything (ids, timestamps) and whitespace is ignored;
- a block preceded by the line ``<!-- readme-test: skip -->`` is not run
  (commands that start servers, need other tools, or show a placeholder).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

SKIP_MARKER = "<!-- readme-test: skip -->"
OUTPUT_PREFIX = "# =>"
_FENCE = re.compile(r"^```(\w*)\s*$")


@dataclass
class Step:
    line: int  # where the command starts in the README
    command: str
    expected: str | None  # None: the README shows no output for it


def shell_blocks(readme: Path) -> list[tuple[int, list[str]]]:
    """(first line number, lines) of each ```sh block not marked to skip."""
    blocks: list[tuple[int, list[str]]] = []
    lines = readme.read_text().splitlines()
    index = 0
    while index < len(lines):
        fence = _FENCE.match(lines[index])
        if fence is None:
            index += 1
            continue
        end = next(i for i in range(index + 1, len(lines)) if lines[i].startswith("```"))
        skipped = index > 0 and lines[index - 1].strip() == SKIP_MARKER
        if fence.group(1) in ("sh", "bash", "shell") and not skipped:
            blocks.append((index + 2, lines[index + 1 : end]))
        index = end + 1
    return blocks


def steps(readme: Path) -> list[Step]:
    found: list[Step] = []
    for first_line, lines in shell_blocks(readme):
        command: list[str] = []
        for offset, line in enumerate(lines):
            if line.startswith(OUTPUT_PREFIX):
                shown = line[len(OUTPUT_PREFIX) :]
                step = found[-1]
                step.expected = shown if step.expected is None else step.expected + shown
            elif line.startswith("#") or not line.strip():
                continue
            else:
                command.append(line)
                if not line.endswith("\\") and _quotes_closed("\n".join(command)):
                    start = first_line + offset - len(command) + 1
                    found.append(Step(start, "\n".join(command), None))
                    command = []
    return found


def matches(expected: str, actual: str) -> bool:
    """``actual`` is what ``expected`` shows, ``...`` standing for anything."""
    pattern = ".*?".join(re.escape(part) for part in _squeeze(expected).split("..."))
    return re.fullmatch(pattern, _squeeze(actual), re.DOTALL) is not None


def _squeeze(text: str) -> str:
    return re.sub(r"\s+", "", text)


def _quotes_closed(text: str) -> bool:
    """Whether single quotes balance (a -d '{...}' body may span lines)."""
    return text.count("'") % 2 == 0
