"""Two processes creating the reward secret at once (issue 15, defect 7): both get the same one."""

from __future__ import annotations

import threading
from pathlib import Path

from banditroute.store.datadir import load_or_create_secret, secret_path

RACERS = 8
ROUNDS = 40


def test_concurrent_creators_all_read_the_one_secret_that_was_written(tmp_path: Path) -> None:
    for round_ in range(ROUNDS):
        path = secret_path(tmp_path / f"round-{round_}")
        barrier = threading.Barrier(RACERS)
        results: list[bytes | BaseException] = []

        def create() -> None:
            barrier.wait()
            try:
                results.append(load_or_create_secret(path, {}))
            except Exception as exc:  # the assertion below names it
                results.append(exc)

        threads = [threading.Thread(target=create) for _ in range(RACERS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert all(isinstance(r, bytes) for r in results), results
        assert len(set(results)) == 1 and len(results) == RACERS
        assert bytes.fromhex(path.read_text()) == results[0]
        assert (path.stat().st_mode & 0o777) == 0o600
        assert [p.name for p in path.parent.iterdir()] == [path.name], "no temporary file left behind"
