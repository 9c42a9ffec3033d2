"""Event ids: 128 random bits, never repeated, not shared by a forked serving process."""

from __future__ import annotations

import os

from banditroute.router import new_event_id


def test_ids_are_128_bit_hex_and_unique_across_blocks() -> None:
    ids = [new_event_id() for _ in range(10_000)]  # more than two blocks of the pool
    assert len(set(ids)) == len(ids)
    assert all(len(i) == 32 and int(i, 16) >= 0 for i in ids)


def test_a_forked_child_draws_its_own_ids() -> None:
    new_event_id()  # the parent holds a partly used block
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        os.write(write, "".join(new_event_id() for _ in range(8)).encode())
        os._exit(0)
    os.waitpid(pid, 0)
    child = os.read(read, 1024).decode()
    os.close(read)
    os.close(write)
    parent = "".join(new_event_id() for _ in range(8))
    assert len(child) == 256 and child != parent
    assert not {child[i : i + 32] for i in range(0, 256, 32)} & {parent[i : i + 32] for i in range(0, 256, 32)}
