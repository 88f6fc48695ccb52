"""The proving ground of issue 21 in the suite: three production instances behind Debian's
HAProxy, members of both official clients chatting in rooms across them, every instance
restarted in turn (SIGTERM, start again), then one SIGKILLed (bench/harness/cluster.py).

The invariants, not the timings: 0 failed HTTP requests through HAProxy, every socket back
after each phase, every member holding every message of its rooms from its first join on,
once each and in ``seq`` order (the same message at each ``seq`` everywhere), and the rooms'
presence right after the crash. ``make cluster-smoke`` runs the same harness with 100+
sockets and records its figures (docs/performance.md); this is its CI size.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.harness.cluster import Config, message_faults, prove

#: About a fifth of ``make cluster-smoke``: every restart and the crash, fewer sockets, a
#: shorter drain spread and presence TTL (the waits they bound are shorter too).
CI = Config(
    js_members=12,
    py_members=10,
    mortals=3,
    rooms=3,
    rate=3.0,
    settle=1.0,
    wait=90.0,
    http_threads=1,
    settings={
        "SHUTDOWN_TIMEOUT": "4",
        "SOCKETIO_RECONNECT_SPREAD_MS": "2000",
        "SOCKETIO_PRESENCE_TTL": "9",
    },
)


@pytest.mark.timeout(600)
def test_a_rolling_restart_and_a_crash_behind_haproxy_lose_nothing(
    app_env: dict[str, str], tmp_path: Path
) -> None:
    proof = prove(app_env, CI, tmp_path)
    print(proof.summary())  # the figures, shown with -s or on failure
    assert proof.broken == [], proof.summary()
    figures = proof.figures
    # The run did what it says: traffic flowed, members reconnected and recovered messages,
    # and the crash took mortal members with it.
    assert figures["http requests"] > 0
    assert figures["acked"] > 0
    assert [p["reconnected"] for p in proof.phases if p["reconnected"] == 0] == []
    assert proof.phases[-1]["mortals_gone"] >= 1


def held(base: int, seqs: list[int]) -> dict[str, object]:
    return {"base": base, "last": seqs[-1] if seqs else base, "seqs": seqs,
            "ids": [f"m{s}" for s in seqs]}  # fmt: skip


@pytest.mark.parametrize(
    ("seqs", "fault"),
    [
        ([3, 4, 6], "holds 3 of 4 (missing [5])"),  # lost
        ([3, 5, 4, 6], "holds 4 of 4"),  # out of order
        ([3, 4, 5], "holds 3 of 4 (missing [6])"),  # never caught up
    ],
)
def test_the_check_finds_a_lost_or_misordered_message(seqs: list[int], fault: str) -> None:
    reports = [
        {"index": 0, "rooms": {"r": held(2, [3, 4, 5, 6])}},
        {"index": 1, "rooms": {"r": held(2, seqs)}},
    ]
    broken, _ = message_faults(reports, {"r": 6}, [])
    assert len(broken) == 1
    assert fault in broken[0]


def test_the_check_finds_two_messages_at_one_seq_and_a_lost_acked_send() -> None:
    other = held(0, [1, 2])
    other["ids"] = ["m1", "x2"]
    reports = [
        {"index": 0, "rooms": {"r": held(0, [1, 2])}},
        {"index": 1, "rooms": {"r": other}},
    ]
    broken, _ = message_faults(reports, {"r": 2}, [("r", 1, "elsewhere")])
    assert broken == [
        "room r seq 2: two messages (m2, x2)",
        "acked message elsewhere is not seq 1 everywhere",
    ]
    assert message_faults(reports[:1], {"r": 2}, [("r", 2, "m2")]) == (
        [],
        {"lost": 0, "disordered": 0},
    )
