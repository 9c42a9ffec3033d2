"""Cut small test fixtures out of the shared routing data sets, in the same format.

    python -m tools.make_fixtures data tests/fixtures/data

Each fixture keeps `size` prompts of its set, in file order: the rows that exercise edge cases
(prompts missing some model's result, a few prompts whose text repeats an earlier one, together
with that earlier one) and an evenly spaced sample of the rest. `models.json` and `README.md` are
copied as they are, so the fixtures load exactly like the full sets.
"""

from __future__ import annotations

import argparse
import gzip
import shutil
from pathlib import Path
from typing import Any

import orjson

from simulators.datasets import MODELS_FILE, PROMPTS_FILE

FIXTURE_SIZE = 150
EDGE_CASES_PER_KIND = 8


def make_fixture(source: Path, target: Path, *, size: int = FIXTURE_SIZE) -> int:
    """Write a `size`-prompt slice of the data set in `source` to `target`; returns the row count."""
    with gzip.open(source / PROMPTS_FILE, "rb") as lines:
        rows = [orjson.loads(line) for line in lines if line.strip()]
    keep = _select(rows, size)
    target.mkdir(parents=True, exist_ok=True)
    # mtime=0 keeps the gzip bytes identical across regenerations, so git sees no change
    with gzip.GzipFile(target / PROMPTS_FILE, "wb", mtime=0) as out:
        out.writelines(orjson.dumps(rows[i]) + b"\n" for i in keep)
    for name in (MODELS_FILE, "README.md"):
        if (source / name).exists():
            shutil.copyfile(source / name, target / name)
    return len(keep)


def _select(rows: list[dict[str, Any]], size: int) -> list[int]:
    per_kind = min(EDGE_CASES_PER_KIND, size // 4)
    n_models = max(len(row["results"]) for row in rows)
    incomplete = [i for i, row in enumerate(rows) if len(row["results"]) < n_models][:per_kind]
    repeats = _repeated_pairs(rows)[: per_kind // 2]
    chosen = set(incomplete) | {i for pair in repeats for i in pair}
    rest = [i for i in range(len(rows)) if i not in chosen]
    room = max(0, size - len(chosen))
    if room and rest:
        step = len(rest) / room
        chosen |= {rest[int(k * step)] for k in range(min(room, len(rest)))}
    return sorted(chosen)


def _repeated_pairs(rows: list[dict[str, Any]]) -> list[tuple[int, int]]:
    """(first occurrence, later repeat) of prompt texts, later repeats from across a split first."""
    first: dict[str, int] = {}
    pairs = []
    for i, row in enumerate(rows):
        if row["prompt"] in first:
            pairs.append((first[row["prompt"]], i))
        else:
            first[row["prompt"]] = i
    return sorted(pairs, key=lambda pair: rows[pair[0]].get("split") == rows[pair[1]].get("split"))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path, help="folder holding one sub-folder per data set")
    parser.add_argument("target", type=Path, help="where to write the fixtures (one sub-folder per set)")
    parser.add_argument("--size", type=int, default=FIXTURE_SIZE, help="prompts per fixture")
    args = parser.parse_args(argv)
    for folder in sorted(p for p in args.source.iterdir() if (p / PROMPTS_FILE).exists()):
        count = make_fixture(folder, args.target / folder.name, size=args.size)
        print(f"{folder.name}: {count} prompts -> {args.target / folder.name}")


if __name__ == "__main__":
    main()
