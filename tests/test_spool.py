"""The on-disk spool: order, durability across reopen and kill -9, the size bound."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from greenwatch.core.spool import Spool, SpoolLockedError


def lines(start: int, n: int) -> list[str]:
    # Fixed width, so every line has the same size and the bound arithmetic is exact.
    return [f"m,host=h{i % 3} seq={i:06d}i {1_700_000_000_000_000_000 + i}" for i in range(start, start + n)]


def drain_all(spool: Spool) -> list[str]:
    upto, got = spool.peek(10**9)
    return got


def test_peek_returns_oldest_first_and_ack_removes_up_to_id(tmp_path: Path) -> None:
    with Spool(tmp_path / "spool.db") as spool:
        spool.append(lines(0, 5))
        spool.append(lines(5, 5))

        upto, batch = spool.peek(3)
        assert batch == lines(0, 3)
        # peek does not remove anything
        assert spool.peek(3) == (upto, batch)

        assert spool.ack(upto) == 3
        upto2, batch2 = spool.peek(100)
        assert batch2 == lines(3, 7)
        assert upto2 > upto
        assert spool.ack(upto2) == 7
        assert spool.peek(10) == (0, [])

        stats = spool.stats()
        assert (stats.appended, stats.acked, stats.dropped, stats.pending, stats.pending_bytes) == (10, 10, 0, 0, 0)


def test_counters_track_lines_and_utf8_bytes(tmp_path: Path) -> None:
    with Spool(tmp_path / "spool.db") as spool:
        batch = ["m,site=Zürich w=1 1", "m,site=London w=2 2"]
        spool.append(batch)
        assert spool.pending == 2
        # pending_bytes counts UTF-8 bytes of the text: ü is two bytes
        assert spool.pending_bytes == sum(len(line.encode()) for line in batch)
        assert spool.pending_bytes == len(batch[0]) + 1 + len(batch[1])


def test_reopen_keeps_pending_lines_in_order(tmp_path: Path) -> None:
    path = tmp_path / "spool.db"
    with Spool(path) as spool:
        spool.append(lines(0, 50))
        spool.append(lines(50, 50))
        upto, _ = spool.peek(20)
        spool.ack(upto)
    with Spool(path) as spool:
        assert spool.pending == 80
        assert spool.pending_bytes == sum(len(x.encode()) for x in lines(20, 80))
        assert drain_all(spool) == lines(20, 80)
        # counters of a reopened spool start from zero; pending comes from disk
        assert (spool.appended, spool.acked, spool.dropped) == (0, 0, 0)


def test_ids_keep_growing_after_the_spool_was_emptied(tmp_path: Path) -> None:
    """An ack taken from an old peek must never delete lines appended later, even
    when everything in between was acked or dropped and the spool reopened."""
    path = tmp_path / "spool.db"
    with Spool(path) as spool:
        spool.append(lines(0, 10))
        old_upto, _ = spool.peek(10)
        spool.ack(old_upto)
    with Spool(path) as spool:
        spool.append(lines(10, 3))
        assert spool.ack(old_upto) == 0
        assert drain_all(spool) == lines(10, 3)


def test_ack_after_the_bound_dropped_the_peeked_lines_keeps_newer_ones(tmp_path: Path) -> None:
    one = len(lines(0, 1)[0].encode())
    with Spool(tmp_path / "spool.db", max_bytes=one * 4) as spool:
        spool.append(lines(0, 4))
        upto, batch = spool.peek(4)
        assert batch == lines(0, 4)
        # while that batch is "in flight", appends push all four out
        spool.append(lines(4, 4))
        assert spool.dropped == 4
        assert spool.ack(upto) == 0  # nothing of the newer lines goes
        assert drain_all(spool) == lines(4, 4)


def test_bound_drops_oldest_lines_and_counts_them(tmp_path: Path) -> None:
    size = len(lines(0, 1)[0].encode())  # every line here has the same size
    with Spool(tmp_path / "spool.db", max_bytes=size * 10) as spool:
        for start in range(0, 30, 5):
            spool.append(lines(start, 5))
            assert spool.pending_bytes <= spool.max_bytes
        assert spool.dropped == 20
        assert spool.appended == 30
        assert spool.pending == 10
        assert drain_all(spool) == lines(20, 10)


def test_an_append_larger_than_the_bound_keeps_its_newest_lines(tmp_path: Path) -> None:
    size = len(lines(0, 1)[0].encode())
    with Spool(tmp_path / "spool.db", max_bytes=size * 3 + 1) as spool:
        spool.append(lines(0, 2))
        spool.append(lines(2, 8))
        assert drain_all(spool) == lines(7, 3)
        assert spool.dropped == 7
        assert spool.pending_bytes == size * 3


def test_bound_survives_reopen(tmp_path: Path) -> None:
    size = len(lines(0, 1)[0].encode())
    path = tmp_path / "spool.db"
    with Spool(path, max_bytes=size * 10) as spool:
        spool.append(lines(0, 10))
    with Spool(path, max_bytes=size * 10) as spool:
        spool.append(lines(10, 4))
        assert spool.dropped == 4
        assert drain_all(spool) == lines(4, 10)


def test_second_opener_of_the_same_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "spool.db"
    with Spool(path):
        with pytest.raises(SpoolLockedError, match="in use"):
            Spool(path)
    with Spool(path) as spool:  # free again once closed
        assert spool.pending == 0


def test_closed_spool_says_so(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool.db")
    spool.close()
    spool.close()  # idempotent
    with pytest.raises(RuntimeError, match="closed"):
        spool.append(["m v=1 1"])


def test_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="max_bytes"):
        Spool(tmp_path / "a.db", max_bytes=0)
    with pytest.raises(ValueError, match="synchronous"):
        Spool(tmp_path / "b.db", synchronous="OFF")  # type: ignore[arg-type]
    with Spool(tmp_path / "c.db") as spool:
        with pytest.raises(ValueError, match="max_lines"):
            spool.peek(0)


WRITER = textwrap.dedent(
    """
    import sys
    from greenwatch.core.spool import Spool

    spool = Spool(sys.argv[1])
    n = 0
    while True:
        spool.append([f"m,host=h seq={i}i {i}" for i in range(n, n + 50)])
        n += 50
        # Only after append returned: these lines are promised to be on disk.
        print(n, flush=True)
    """
)


def test_lines_survive_kill_9_in_order(tmp_path: Path) -> None:
    path = tmp_path / "spool.db"
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(path)], stdout=subprocess.PIPE, text=True
    )
    confirmed = 0
    try:
        deadline = time.monotonic() + 20
        assert proc.stdout is not None
        while confirmed < 5000 and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            confirmed = int(line)
    finally:
        # Mid-stream: the writer is almost always inside an append right now.
        os.kill(proc.pid, signal.SIGKILL)
        rest, _ = proc.communicate(timeout=10)
    for line in rest.split():
        confirmed = int(line)
    assert proc.returncode == -signal.SIGKILL
    assert confirmed >= 5000, "the writer did not get going"

    with Spool(path) as spool:
        got = drain_all(spool)
    seqs = [int(line.split("seq=")[1].split("i")[0]) for line in got]
    # Every confirmed line is there, in order, with no gaps or duplicates; at most
    # the one append that was committed but not yet reported comes on top, and
    # never half of an append.
    assert seqs == list(range(len(seqs)))
    assert len(seqs) in (confirmed, confirmed + 50)
