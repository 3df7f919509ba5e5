"""How fast the HubSpot emulator seeds a book: what every large test and bench phase waits for first.

A fresh emulator per run seeds 10,000 deals, 2,000 companies and 4,000 contacts through its
``/_emulator/seed`` control (HTTP, as tests call it); the figure is the median of a few runs. It used to
be a wall-time assertion in the emulator's tests, where a loaded 2-core machine made it fail.

``python -m bench.emulator_seed`` prints the figure alone.
"""

from __future__ import annotations

import statistics
import time

import requests

from bench.report import Result, figure, format_table

RUNS = 3
BOOK = {"deals": 10_000, "companies": 2_000, "contacts": 4_000}
GOAL_S = 3.0


def seed_seconds(book: dict[str, int] | None = None, runs: int = RUNS) -> list[float]:
    """Wall times of seeding ``book`` into a fresh emulator, ``runs`` times."""
    from emulators.hubspot import HubSpotEmulator

    book = book or BOOK
    times = []
    for i in range(runs):
        with HubSpotEmulator(port=0) as emulator:
            started = time.perf_counter()
            resp = requests.post(f"{emulator.url}/_emulator/seed", json={**book, "seed": i + 1}, timeout=300)
            resp.raise_for_status()
            times.append(time.perf_counter() - started)
    return times


def measure_seed_speed(book: dict[str, int] | None = None, runs: int = RUNS) -> list[Result]:
    """One figure: median seconds to seed the book (goal <= 3 s)."""
    book = book or BOOK
    times = seed_seconds(book, runs)
    median = statistics.median(times)
    label = ", ".join(f"{n:,} {kind}" for kind, n in book.items())
    return [
        figure(
            f"HubSpot emulator seed ({label})",
            round(median, 2),
            "s",
            "<=",
            GOAL_S,
            f"median of {runs} fresh emulators over HTTP (/_emulator/seed); runs: "
            + ", ".join(f"{t:.2f} s" for t in times),
        )
    ]


if __name__ == "__main__":
    print(format_table(measure_seed_speed()))
