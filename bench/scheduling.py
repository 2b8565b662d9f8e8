"""Benchmark of scheduling's domain on a seeded population (no broker: the pure decisions).

  - initial-meeting slots: for each of 10,000 active matches (``--matches``), the client's and the
    supporter's weekly availability (``alongside/sample.py``), the earliest common
    hour after a 48-hour lead in Pacific/Auckland, and a safe method both accept;
  - schedule build: for the same 10,000 matches, a year of weekly sessions (52) at
    the same local time, across a daylight-saving change, as ``Session`` records;
  - baseline in the same run: the same series built naively (adding 7 days in UTC,
    which moves the local time at a DST change), to show what local-time
    correctness costs; and a check that the naive series really is wrong.
  - the weekly series alone (date arithmetic, no records), to show where the time goes;
  - peak RSS of the process.
The last line is JSON with ``active_matches``, ``schedule_build_s``,
``initial_meeting_slots_per_s``, ``peak_rss_mb``.

    python -m bench.scheduling [--matches 10000]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import resource
import sys
import time
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from alongside import sample
from contracts.records import Session
from services.scheduling import domain

SEED = 20261123
MATCHES = 10_000
WEEKS = 52
ZONE = ZoneInfo("Pacific/Auckland")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--matches", type=int, default=MATCHES, help="active matches")
    matches = parser.parse_args().matches
    rng = random.Random(SEED)
    pairs = [
        (sample.intake(rng, f"c{i}").client, sample.supporter(rng, f"s{i}").profile)
        for i in range(matches)
    ]
    now = datetime(2026, 11, 23, 9, tzinfo=ZONE)
    after = now + timedelta(hours=48)

    start = time.perf_counter()
    found = []
    for client, supporter in pairs:
        method = domain.meeting_method(client.methods, supporter.methods, client.safety_concerns)
        slot = domain.first_common_time(
            client.availability, supporter.availability, 60, after, ZONE
        )
        found.append((method, slot))
    slots_s = time.perf_counter() - start
    with_slot = sum(1 for method, slot in found if method and slot)

    # Every match gets a weekly series, from its meeting if it has one, else next Tuesday 18:00.
    firsts = [
        slot or domain.at(after.date(), datetime.min.time().replace(hour=18), ZONE)
        for _, slot in found
    ]
    start = time.perf_counter()
    built = 0
    for i, first in enumerate(firsts):
        until = first.date() + timedelta(weeks=WEEKS + 1)
        starts = domain.weekly(domain.next_week(first, ZONE), until, ZONE)
        sessions = [
            Session(
                session_id=f"c{i}-{k}",
                kind="regular",
                start=s,
                end=s + timedelta(hours=1),
                method="phone",
                status="booked",
            )
            for k, s in enumerate(starts)
        ]
        built += len(sessions)
    build_s = time.perf_counter() - start

    start = time.perf_counter()
    for first in firsts:  # the date arithmetic alone, without building records
        domain.weekly(
            domain.next_week(first, ZONE), first.date() + timedelta(weeks=WEEKS + 1), ZONE
        )
    series_only_s = time.perf_counter() - start

    start = time.perf_counter()
    naive_moved = 0
    for i, first in enumerate(firsts):
        utc = first.astimezone(UTC) + timedelta(weeks=1)
        starts = [utc + timedelta(weeks=k) for k in range(WEEKS)]
        sessions = [
            Session(
                session_id=f"c{i}-{k}",
                kind="regular",
                start=s,
                end=s + timedelta(hours=1),
                method="phone",
                status="booked",
            )
            for k, s in enumerate(starts)
        ]
        local_times = {s.start.astimezone(ZONE).time() for s in sessions}
        naive_moved += len(local_times) > 1
    naive_s = time.perf_counter() - start

    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    figures = {
        "seed": SEED,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}",
        "active_matches": matches,
        "sessions_built": built,
        "schedule_build_s": round(build_s, 3),
        "weekly_series_only_s": round(series_only_s, 3),
        "naive_utc_build_s": round(naive_s, 3),
        "local_time_cost_ratio": round(build_s / naive_s, 2),
        "naive_series_that_moved_local_time": naive_moved,
        "initial_meeting_slots_per_s": round(matches / slots_s),
        "matches_with_a_common_slot_and_method": with_slot,
        "peak_rss_mb": round(peak_mb, 1),
    }
    print(
        f"{matches} matches: slots {figures['initial_meeting_slots_per_s']}/s "
        f"({with_slot} found); {built} sessions built in {build_s:.2f} s "
        f"(naive UTC {naive_s:.2f} s, moved {naive_moved}); peak {peak_mb:.0f} MB",
        file=sys.stderr,
    )
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
