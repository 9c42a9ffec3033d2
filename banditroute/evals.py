"""Eval samples: prompts with every model's outcome, read for a warm start ("evals before routing").

The format is that of the bundled data sets (data/README.md): a folder with `prompts.jsonl.gz` (or
`prompts.jsonl`), one prompt a line,

    {"id": str, "task": str?, "prompt": str,
     "results": {model: {"quality": 0..1, "cost_usd": float|null, "input_tokens": int?, "output_tokens": int?}}}

A model missing from `results` has no outcome for that prompt. `parse_line` is pure; `read_evals`
reads the folder (or a single .jsonl / .jsonl.gz file).
"""

from __future__ import annotations

import gzip
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

from banditroute.types import EvalExample, Outcome


class EvalsError(ValueError):
    """An eval file that cannot be read, with where and why."""


def _number(value: Any, what: str, *, low: float = 0.0, high: float = math.inf) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise EvalsError(f"{what} must be a number in [{low}, {high}], got {value!r}")
    return float(value)


def _count(value: Any, what: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise EvalsError(f"{what} must be a whole number >= 0, got {value!r}")
    return value


def parse_line(obj: Any, *, with_task: bool = False) -> EvalExample:
    """One prompt's line as an EvalExample; `with_task` passes the line's task label as metadata.task."""
    if not isinstance(obj, dict) or not isinstance(obj.get("prompt"), str):
        raise EvalsError("each line must be an object with a string 'prompt'")
    results = obj.get("results")
    if not isinstance(results, dict) or not results:
        raise EvalsError("each line must have a non-empty 'results' object: {model: {quality, ...}}")
    outcomes = {}
    for model, r in results.items():
        if not isinstance(r, dict):
            raise EvalsError(f"results[{model!r}] must be an object")
        outcomes[str(model)] = Outcome(
            quality=_number(r.get("quality"), f"results[{model!r}].quality", high=1.0),
            cost_usd=_number(r.get("cost_usd"), f"results[{model!r}].cost_usd"),
            latency_ms=_number(r.get("latency_ms"), f"results[{model!r}].latency_ms"),
            input_tokens=_count(r.get("input_tokens"), f"results[{model!r}].input_tokens"),
            output_tokens=_count(r.get("output_tokens"), f"results[{model!r}].output_tokens"),
        )
    task = obj.get("task")
    metadata = {"task": task} if with_task and isinstance(task, str) else {}
    return EvalExample(obj["prompt"], metadata, outcomes)


def _prompts_file(path: Path) -> Path:
    if path.is_dir():
        for name in ("prompts.jsonl.gz", "prompts.jsonl"):
            if (path / name).is_file():
                return path / name
        raise EvalsError(f"{path} holds no prompts.jsonl.gz or prompts.jsonl")
    if not path.is_file():
        raise EvalsError(f"no eval file or folder at {path}")
    return path


def _lines(path: Path) -> Iterator[bytes]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        yield from f


def read_evals(path: str | Path, *, limit: int | None = None, with_task: bool = False) -> list[EvalExample]:
    """The eval sample in a folder or file, in file order (the first `limit` prompts if given)."""
    source = _prompts_file(Path(path))
    out: list[EvalExample] = []
    try:
        for number, line in enumerate(_lines(source), 1):
            if limit is not None and len(out) >= limit:
                break
            if not line.strip():
                continue
            try:
                out.append(parse_line(orjson.loads(line), with_task=with_task))
            except orjson.JSONDecodeError as exc:
                raise EvalsError(f"{source}:{number}: not JSON ({exc})") from None
            except EvalsError as exc:
                raise EvalsError(f"{source}:{number}: {exc}") from None
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise EvalsError(f"cannot read {source}: {exc}") from None
    if not out:
        raise EvalsError(f"{source} holds no prompts")
    return out
