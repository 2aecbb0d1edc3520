"""CPU of the embedded store's own thread per frame: ``write`` + ``flush`` (+ ``close``) as the
collector's writer thread calls them, before vs after a change, interleaved in one run.

The workload is the simulator market's frames (``frames.py``: trades, best quotes and depth diffs
of 4 symbols) decoded by the Binance venue into records, then fed to the store in flushes of
``rate * flush_interval`` frames' records. The store's clock is simulated (one flush per
``flush_interval`` seconds), so age thresholds, compaction and grace periods play out as in
``--minutes`` of collecting while the bench takes seconds; CPU is the thread's own
(``time.thread_time``), not wall time, so a loaded machine shifts both contenders alike.
pyarrow runs part of the work on its own thread pool (``pq.read_table`` decodes columns in
parallel: compaction and recovery read parts back), which the thread's CPU does not see, so the
process's CPU over the same span (``time.process_time``: the child does nothing else then) is
reported beside it (``process_cpu_us_per_frame``).

``.venv/bin/python bench/store_cpu.py --before /path/to/old/src`` runs the store of another
source tree (a worktree of the base commit) against this one, alternating, ``--rounds`` times.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import types
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
SRC = HERE.parent / "src"


def _child(rate: int, minutes: float, flush_interval: float, fsync: bool) -> dict[str, Any]:
    """One measurement in this process (the hundi on ``sys.path``)."""
    sys.path.insert(0, str(HERE))
    from frames import generate
    from micro import records_of

    import hundi.stores.embedded.store as store_module
    from hundi.simulator.binance.rules import BinanceVariant
    from hundi.stores.embedded import EmbeddedStore

    gen = generate(BinanceVariant.SPOT, ("BTCUSDT", "ETHUSDT", "BNBUSDT", "SOLUSDT"), 120_000)
    records = records_of(BinanceVariant.SPOT, gen)
    n_frames = len(gen.frames)
    per_frame = sum(len(r) for r in records.values()) / n_frames
    clock = [time.monotonic()]
    names = [k for k in dir(time) if not k.startswith("_")]
    fake = types.SimpleNamespace(**{k: getattr(time, k) for k in names})
    fake.monotonic = lambda: clock[0]
    store_module.time = fake  # type: ignore[assignment]
    flushes = int(minutes * 60 / flush_interval)
    frames_per_flush = max(1, int(rate * flush_interval))
    with tempfile.TemporaryDirectory(prefix="hundi-store-cpu-") as tmp:
        store = EmbeddedStore(tmp, fsync=fsync)
        cursor = {c: 0 for c in records}
        start, start_process = time.thread_time(), time.process_time()
        for _ in range(flushes):
            batch = {}
            for channel, recs in records.items():
                take = max(1, round(frames_per_flush * len(recs) / n_frames))
                at = cursor[channel]
                chunk = recs[at : at + take]
                if len(chunk) < take:
                    chunk += recs[: take - len(chunk)]
                cursor[channel] = (at + take) % len(recs)
                batch[channel] = chunk
            store.write(batch)
            store.flush()
            clock[0] += flush_interval
        store.close()
        cpu = time.thread_time() - start
        process_cpu = time.process_time() - start_process
        parquet = sum(1 for _ in Path(tmp).rglob("*.parquet"))
    frames = flushes * frames_per_flush
    return {
        "frames": frames,
        "records_per_frame": round(per_frame, 2),
        "cpu_s": round(cpu, 3),
        "cpu_us_per_frame": round(1e6 * cpu / frames, 2),
        "process_cpu_us_per_frame": round(1e6 * process_cpu / frames, 2),
        "parquet_files_at_end": parquet,
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def _measure(src: Path, rate: int, minutes: float, flush_interval: float) -> dict[str, Any]:
    env = dict(os.environ, PYTHONPATH=str(src))
    cmd = [sys.executable, __file__, "--child", str(rate), str(minutes), str(flush_interval)]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=3600)
    if done.returncode != 0:
        raise RuntimeError(f"{src}: {done.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--before", type=Path, help="src/ of the tree to compare against")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--flush-interval", type=float, default=0.5)
    parser.add_argument(
        "--scenario",
        action="append",
        help="RATE:MINUTES (frames/s, simulated minutes); default 1000:10 and 200000:0.5",
    )
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        rate, minutes, interval = args.child
        print(json.dumps(_child(int(rate), float(minutes), float(interval), True)))
        return
    wanted = args.scenario or ["1000:10", "200000:0.5"]
    scenarios = [tuple(map(float, s.split(":"))) for s in wanted]
    contenders = {"after": SRC}
    if args.before:
        sys.path.insert(0, str(HERE))
        from trees import build_extensions

        build_extensions(args.before)
        contenders = {"before": args.before, **contenders}
    results: dict[str, list[dict[str, Any]]] = {}
    for rate, minutes in scenarios:
        for round_ in range(args.rounds):
            for name, src in contenders.items():
                got = _measure(src, int(rate), minutes, args.flush_interval)
                key = f"{int(rate)}/s {name}"
                results.setdefault(key, []).append(got)
                print(f"round {round_ + 1} {key}: {got}", flush=True)
    print(
        "\nstore thread CPU µs per frame (min of rounds; with pyarrow's pool threads: process),"
        " peak RSS MB (max):"
    )
    for rate, _ in scenarios:
        line = []
        for name in contenders:
            runs = results[f"{int(rate)}/s {name}"]
            best = min(r["cpu_us_per_frame"] for r in runs)
            process = min(r.get("process_cpu_us_per_frame", best) for r in runs)
            rss = max(r["peak_rss_mb"] for r in runs)
            line.append(f"{name} {best:.2f} µs (process {process:.2f} µs, {rss:.0f} MB)")
        ratio = ""
        if "before" in contenders:
            before = min(r["cpu_us_per_frame"] for r in results[f"{int(rate)}/s before"])
            after = min(r["cpu_us_per_frame"] for r in results[f"{int(rate)}/s after"])
            ratio = f"  before/after {before / after:.1f}x"
        print(f"  {int(rate)} frames/s: " + ", ".join(line) + ratio)


if __name__ == "__main__":
    main()
