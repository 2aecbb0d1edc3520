"""Run ``hundi collect`` under cProfile, the event-loop thread *and* the store-writer threads.

Why both: the receive path runs on the event loop, ``to_arrow`` and Parquet writes on one
thread per store, and they share the GIL, so either can be the bottleneck.

Usage (arguments are those of ``hundi collect``; point it at a running simulator)::

    .venv/bin/python bench/profile_collector.py --out DIR [--top N] -- binance --symbols ...

``--store null:`` profiles the collector with a store that keeps nothing
(``bench/collect_nostore.py``). Writes ``DIR/main.prof`` and ``DIR/writer-N.prof`` (open with
``python -m pstats`` or snakeviz) and prints the top functions by own time of each.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import sys
from pathlib import Path
from typing import Any


def top_entries(path: Path, n: int, sort: str = "tottime") -> list[dict[str, Any]]:
    """The ``n`` costliest functions of a profile: file:line name, own and cumulative s."""
    stats = pstats.Stats(str(path), stream=io.StringIO())
    stats.sort_stats(sort)
    rows = []
    raw: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
    ordered = sorted(raw.items(), key=lambda kv: kv[1][2 if sort == "tottime" else 3], reverse=True)
    total = sum(v[2] for v in raw.values()) or 1.0
    for (filename, line, name), (_cc, ncalls, tottime, cumtime, _callers) in ordered[:n]:
        short = filename.split("/site-packages/")[-1].split("/src/")[-1]
        rows.append({
            "function": f"{short}:{line}({name})",
            "calls": ncalls,
            "own_s": round(tottime, 3),
            "own_pct": round(100 * tottime / total, 1),
            "cum_s": round(cumtime, 3),
        })  # fmt: skip
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("collect_args", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    collect_args = [a for a in args.collect_args if a != "--"]
    args.out.mkdir(parents=True, exist_ok=True)

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import collect_nostore

    collect_nostore.install()  # ``--store null:``: the collector without a store's cost

    from hundi.pipeline import writer

    original_run = writer.StoreWriter._run
    count = 0

    def profiled_run(self: writer.StoreWriter) -> None:
        nonlocal count
        count += 1
        profile = cProfile.Profile()
        try:
            profile.runcall(original_run, self)
        finally:
            profile.dump_stats(str(args.out / f"writer-{count}.prof"))

    writer.StoreWriter._run = profiled_run  # type: ignore[method-assign]

    from hundi.cli import main as hundi_main

    sys.argv = ["hundi", "collect", *collect_args]
    profile = cProfile.Profile()
    try:
        profile.runcall(hundi_main)
    except SystemExit:
        pass
    finally:
        profile.dump_stats(str(args.out / "main.prof"))
    for prof in sorted(args.out.glob("*.prof")):
        print(f"\n== {prof.name}: top {args.top} by own time")
        for row in top_entries(prof, args.top):
            print(
                f"{row['own_s']:8.3f}s {row['own_pct']:5.1f}% {row['cum_s']:8.3f}s cum "
                f"{row['calls']:>9} {row['function']}"
            )


if __name__ == "__main__":
    main()
