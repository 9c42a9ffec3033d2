"""`reward.max_parts_per_event` where a part is committed (issue 15, defect 4): Store.write refuses
what would pass the limit, within a batch and across batches, and says which parts it refused."""

from __future__ import annotations

from pathlib import Path

from banditroute.store.sqlite import Store
from banditroute.types import FeedbackPart


def _parts(event_id: str, n: int) -> list[FeedbackPart]:
    return [FeedbackPart(event_id, float(i), quality=0.5) for i in range(n)]


def test_parts_beyond_the_limit_are_refused_within_and_across_batches(tmp_path: Path) -> None:
    store = Store(tmp_path / "log.db")
    try:
        assert store.write(parts=_parts("a", 3), max_parts_per_event=4) == set()  # all fit: the fast path
        mixed = [*_parts("a", 3), *_parts("b", 2)]
        assert store.write(parts=mixed, max_parts_per_event=4) == {1, 2}  # "a" had 3: one more fits
        assert store.feedback_count("a") == 4 and store.feedback_count("b") == 2
        assert store.write(parts=_parts("b", 5), max_parts_per_event=4) == {2, 3, 4}
        assert store.write(parts=_parts("a", 2)) == set()  # no limit given: stored as before
        assert store.feedback_count("a") == 6 and store.feedback_count("b") == 4
    finally:
        store.close()
