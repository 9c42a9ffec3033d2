"""docs/client.md: every Python example compiles, and the in-process Router example runs and learns."""

from __future__ import annotations

import ast
import contextlib
import io
import re
from pathlib import Path

DOC = Path(__file__).resolve().parents[2] / "docs" / "client.md"
BLOCK = re.compile(r"```python\n(.*?)```", re.S)


def blocks(text: str) -> list[str]:
    return BLOCK.findall(text)


def test_every_python_example_compiles() -> None:
    examples = blocks(DOC.read_text())
    assert len(examples) >= 4
    for source in examples:  # the SDK examples name the reader's own functions, so they are only compiled
        compile(source, str(DOC), "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)


def test_the_router_example_runs_and_learns() -> None:
    text = DOC.read_text()
    (example,) = blocks(text[text.index("## The Router as a library") :])
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(example, str(DOC), "exec"), {"__name__": "docs_client_example"})
    lines = out.getvalue().splitlines()
    assert lines[1].startswith("complete ")
    assert lines[2] == "code questions now go to codestral"
    assert lines[3] == "601 rewards learned"
