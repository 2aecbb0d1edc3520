"""``make bench``: end-to-end and hot-path throughput of the collector.

1. End to end: the Binance simulator at full speed (``--rate 0``) → ``hundi collect`` (a real
   subprocess, real sockets) → the embedded store, for spot and USD-M with trades,bbo,book and
   spot with every channel; then the same against the simulator *replaying* pre-generated frames
   flat out (``--replay ... --speed max``), which costs the simulator far less CPU per frame.
   Reports received frames/s, stored records/s, CPU of both processes, the collector's peak
   RSS, and checks ``received == processed + filtered + rejected`` and that the rows in the
   store equal the summary's ``records``.
2. Bare baseline: a picows client that only receives and msgspec-decodes the same stream
   (``bench/bare.py``), and the ratio collector / bare.
3. CPU microbench (``bench/micro.py``): ``BinanceVenue.receive`` per message type,
   ``records.to_arrow`` and embedded-store write + flush.

The dev box has 2 cores: simulator and collector share them, so end-to-end numbers are bounded
by whichever saturates first (the table shows both CPUs). Results: ``bench/results/latest.json``.
Options: ``--duration S`` per end-to-end run, ``--quick`` (shorter everything), ``--only
e2e|replay|micro``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import psutil
import pyarrow.parquet as pq
from rich.console import Console
from rich.table import Table

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(BENCH))

from frames import generate, write_recording  # noqa: E402
from micro import run_all as run_micro  # noqa: E402

from hundi.simulator import SimulatorProcess  # noqa: E402
from hundi.simulator.binance.rules import BinanceVariant  # noqa: E402
from hundi.stores.embedded.layout import list_parts, split_live  # noqa: E402

SYMBOLS = ("BTCUSDT", "ETHUSDT", "BNBUSDT", "SOLUSDT")
CORE = "trades,bbo,book"
ALL = "trades,bbo,ticker,book,candles"
console = Console(width=None if sys.stdout.isatty() else 150)


class Sampler:
    """Samples one process every 0.1 s: peak RSS and CPU seconds (user + system)."""

    def __init__(self, pid: int) -> None:
        self.proc = psutil.Process(pid)
        self.peak_rss = 0
        self.cpu0 = self._cpu()
        self.cpu = self.cpu0
        self.machine0 = _machine_busy()
        self.samples: list[tuple[int, float]] = []  # (wall ns, CPU s) for windowed CPU
        self.t0 = time.monotonic()
        self.t1 = self.t0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _cpu(self) -> float:
        t = self.proc.cpu_times()
        return float(t.user + t.system)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.peak_rss = max(self.peak_rss, self.proc.memory_info().rss)
                self.cpu = self._cpu()
                self.t1 = time.monotonic()
                self.samples.append((time.time_ns(), self.cpu))
            except psutil.Error:
                return
            self._stop.wait(0.1)

    def stop(self) -> dict[str, float]:
        self._stop.set()
        self._thread.join()
        wall = max(self.t1 - self.t0, 1e-9)
        cpu = self.cpu - self.cpu0
        return {
            "cpu_s": round(cpu, 2),
            "wall_s": round(wall, 2),
            "cpu_pct": round(100 * cpu / wall, 1),
            "peak_rss_mb": round(self.peak_rss / 2**20, 1),
            "machine_busy_cores": round((_machine_busy() - self.machine0) / wall, 2),
        }


def window_cpu_pct(sampler: Sampler, start_ns: int, end_ns: int) -> float:
    """CPU % of the sampled process between two wall times (nearest 0.1 s samples)."""
    inside = [(t, c) for t, c in sampler.samples if start_ns <= t <= end_ns]
    if len(inside) < 2:
        return 0.0
    (t0, c0), (t1, c1) = inside[0], inside[-1]
    return round(100 * (c1 - c0) / ((t1 - t0) / 1e9), 1)


def _machine_busy() -> float:
    """CPU seconds used by everything on the machine (other engineers' tests included)."""
    t = psutil.cpu_times()
    return float(t.user + t.system + t.nice + getattr(t, "irq", 0.0) + getattr(t, "softirq", 0.0))


def sim_stats(rest_url: str) -> dict[str, Any]:
    with urllib.request.urlopen(f"{rest_url}/sim/stats", timeout=10) as response:
        stats: dict[str, Any] = json.load(response)
    return stats


def streams_of(channels: str) -> list[str]:
    suffix = {"trades": "aggTrade", "bbo": "bookTicker", "book": "depth@100ms",
              "ticker": "ticker", "candles": "kline_1m"}  # fmt: skip
    return [f"{s.lower()}@{suffix[c]}" for s in SYMBOLS for c in channels.split(",")]


def stored_rows(root: Path) -> dict[str, int]:
    """Rows per channel in the live Parquet files of an embedded store (file metadata only)."""
    counts: dict[str, int] = {}
    for directory in root.glob("exchange=*/channel=*/symbol=*/date=*"):
        channel = directory.parent.parent.name.removeprefix("channel=")
        live, _ = split_live(list_parts(directory))
        rows = sum(pq.ParquetFile(p.path).metadata.num_rows for p in live)
        counts[channel] = counts.get(channel, 0) + rows
    return counts


def run_collector(
    sim: SimulatorProcess, market: str, channels: str, duration: float, tmp: Path, name: str
) -> dict[str, Any]:
    """``hundi collect`` as a subprocess against ``sim``; measured and checked."""
    store = tmp / f"store-{name}"
    summary_path = tmp / f"summary-{name}.json"
    cmd = [
        sys.executable, "-c", "from hundi.cli import main; main()",
        "collect", "binance", "--market", market,
        "--symbols", ",".join(SYMBOLS), "--channels", channels,
        "--endpoint", sim.ws_url, "--rest-endpoint", sim.rest_url, "--store", str(store),
        "--duration", str(duration), "--summary-json", str(summary_path),
    ]  # fmt: skip
    env = dict(os.environ, HUNDI_LOG_PATH=str(tmp / f"{name}.log"))
    launched_ns = time.time_ns()
    assert sim.proc is not None
    with (tmp / f"{name}.out").open("w") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env)
        sim_sampler = Sampler(sim.proc.pid)
        sampler = Sampler(proc.pid)
        code = proc.wait(timeout=duration + 120)
        usage = sampler.stop()
        sim_usage = sim_sampler.stop()
    if not summary_path.exists():
        raise RuntimeError(f"collector {name} failed ({code}): {(tmp / f'{name}.out').read_text()}")
    summary = json.loads(summary_path.read_text())
    stats = sim_stats(sim.rest_url)
    opened = [c["opened_ns"] for c in stats["connections"] if c["opened_ns"] >= launched_ns]
    last = max(s["last_frame_ns"] for s in summary["streams"].values())
    start_ns = min(opened) if opened else launched_ns
    window_s = (last - start_ns) / 1e9 if last else summary["duration_s"]
    usage["window_cpu_pct"] = window_cpu_pct(sampler, start_ns, last)
    sim_usage["window_cpu_pct"] = window_cpu_pct(sim_sampler, start_ns, last)
    frames = summary["frames"]
    records = {k: v for k, v in summary["records"].items() if v}
    on_disk = stored_rows(store)
    stored = sum(records.values())
    return {
        "name": name,
        "market": market,
        "channels": channels,
        "exit_code": code,
        "received": frames["received"],
        "window_s": round(window_s, 2),
        "frames_per_s": round(frames["received"] / window_s),
        "records": records,
        "records_per_s": round(stored / window_s),
        "balanced": frames["received"]
        == frames["processed"] + frames["filtered"] + frames["rejected"]
        and bool(summary["balanced"]),
        "rejected": frames["rejected_reasons"],
        "stored_equals_summary": on_disk == records,
        "stored_on_disk": on_disk,
        "lost": [s["lost"] for s in summary["stores"] if s["lost"]],
        "gaps": summary["gaps"],
        "resyncs": summary["resyncs"],
        "reconnects": summary["reconnects"],
        "backpressure": summary.get("backpressure", {}),
        "collector": usage,
        "simulator": sim_usage,
        "sim_frames_sent_total": stats["frames_sent"],
    }


def run_bare(sim: SimulatorProcess, channels: str, duration: float) -> dict[str, Any]:
    cmd = [
        sys.executable, str(BENCH / "bare.py"), "--url", f"{sim.ws_url}/stream",
        "--streams", ",".join(streams_of(channels)), "--duration", str(duration),
    ]  # fmt: skip
    assert sim.proc is not None
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    sim_sampler = Sampler(sim.proc.pid)
    sampler = Sampler(proc.pid)
    out, _ = proc.communicate(timeout=duration + 60)
    usage = sampler.stop()
    sim_usage = sim_sampler.stop()
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    window = (result["last_ns"] - result["first_ns"]) / 1e9
    usage["window_cpu_pct"] = window_cpu_pct(sampler, result["first_ns"], result["last_ns"])
    sim_usage["window_cpu_pct"] = window_cpu_pct(sim_sampler, result["first_ns"], result["last_ns"])
    result.update(
        window_s=round(window, 2),
        msgs_per_s=round(result["frames"] / window) if window > 0 else 0,
        client=usage,
        simulator=sim_usage,
    )
    return result


def end_to_end(
    duration: float, replay_frames: int, tmp: Path, *, synthetic: bool = True
) -> dict[str, Any]:
    runs: list[dict[str, Any]] = []
    bare: dict[str, Any] = {}
    symbols = ",".join(SYMBOLS)
    scenarios = (("spot", CORE, True), ("usdm", CORE, False), ("spot", ALL, False))
    for market, channels, with_bare in scenarios if synthetic else ():
        name = f"synthetic-{market}-{'all' if channels == ALL else 'core'}"
        console.log(f"end to end: {name} ({duration:g}s)")
        args = ["--market", market, "--symbols", symbols, "--rate", "0",
                "--max-send-buffer", str(1 << 31)]  # fmt: skip
        with SimulatorProcess(args, startup_timeout=60) as sim:
            runs.append(run_collector(sim, market, channels, duration, tmp, name))
            if with_bare:
                console.log(f"bare picows+msgspec: {name}")
                bare[name] = run_bare(sim, channels, duration)
    console.log(f"replay: generating {replay_frames:,} spot frames")
    gen = generate(BinanceVariant.SPOT, SYMBOLS, replay_frames)
    files = write_recording(gen, tmp / "replay")
    del gen
    args = ["--symbols", symbols, "--speed", "max", "--max-send-buffer", str(1 << 31)]
    for f in files:
        args += ["--replay", str(f)]
    console.log("replay: simulator loading the frames")
    with SimulatorProcess(args, startup_timeout=120) as sim:
        name = "replay-max-spot-core"
        console.log(f"end to end: {name}")
        runs.append(run_collector(sim, "spot", CORE, duration, tmp, name))
        console.log(f"bare picows+msgspec: {name}")
        bare[name] = run_bare(sim, CORE, duration)
    return {"runs": runs, "bare": bare, "replay_frames": replay_frames}


def _fmt(n: float) -> str:
    return f"{n:,.0f}"


def _other(run: dict[str, Any]) -> float:
    """Cores busy with neither the collector nor the simulator during the run."""
    usage = run["collector"]
    ours = (usage["cpu_s"] + run["simulator"]["cpu_s"]) / max(usage["wall_s"], 1e-9)
    return max(0.0, usage["machine_busy_cores"] - ours)


def print_tables(results: dict[str, Any]) -> None:
    e2e = results.get("end_to_end")
    if e2e:
        t = Table(title="End to end: simulator → hundi collect → embedded store (2 cores shared)")
        for col in ("run", "frames/s", "records/s", "collector CPU", "sim CPU", "peak RSS",
                    "other CPU", "received", "balanced", "store = summary",
                    "gaps/resyncs/reconn"):  # fmt: skip
            t.add_column(col, justify="left" if col == "run" else "right")
        for r in e2e["runs"]:
            t.add_row(
                r["name"], _fmt(r["frames_per_s"]), _fmt(r["records_per_s"]),
                f"{r['collector']['window_cpu_pct']:.0f}%",
                f"{r['simulator']['window_cpu_pct']:.0f}%",
                f"{r['collector']['peak_rss_mb']:.0f} MB", f"{100 * _other(r):.0f}%",
                _fmt(r["received"]),
                "yes" if r["balanced"] else "NO",
                "yes" if r["stored_equals_summary"] and not r["lost"] else "NO",
                f"{r['gaps']}/{r['resyncs']}/{r['reconnects']}",
            )  # fmt: skip
        console.print(t)
        t = Table(title="Collector vs bare client (picows receive + msgspec decode, same stream)")
        for col in ("stream", "bare msgs/s", "bare CPU", "sim CPU", "collector frames/s",
                    "collector / bare"):  # fmt: skip
            t.add_column(col, justify="left" if col == "stream" else "right")
        by_name = {r["name"]: r for r in e2e["runs"]}
        for name, b in e2e["bare"].items():
            c = by_name[name]
            ratio = c["frames_per_s"] / b["msgs_per_s"] if b["msgs_per_s"] else 0.0
            t.add_row(name, _fmt(b["msgs_per_s"]), f"{b['client']['window_cpu_pct']:.0f}%",
                      f"{b['simulator']['window_cpu_pct']:.0f}%", _fmt(c["frames_per_s"]),
                      f"{ratio:.2f}")  # fmt: skip
        console.print(t)
    micro = results.get("micro")
    if micro:
        t = Table(title="Protocol hot path, one core, no sockets (frames/s; records/s)")
        for col in ("source", "market", "type", "path", "frames/s", "records/s", "B/frame"):
            t.add_column(col, justify="right" if col in ("frames/s", "records/s", "B/frame")
                         else "left")  # fmt: skip
        for r in micro["protocol"]:
            t.add_row(r["source"], r["market"], r["kind"], r["path"], _fmt(r["frames_per_s"]),
                      _fmt(r["records_per_s"]), str(r["avg_frame_bytes"]))  # fmt: skip
        console.print(t)
        t = Table(title="Columns and store (records/s, one thread)")
        t.add_column("what")
        t.add_column("records/s", justify="right")
        t.add_column("detail", justify="right")
        for r in micro["to_arrow"]:
            t.add_row(f"to_arrow {r['channel']}", _fmt(r["records_per_s"]), f"batch {r['batch']}")
        for r in micro["store"]:
            t.add_row(
                f"embedded write+flush (fsync {'on' if r['fsync'] else 'off'})",
                _fmt(r["records_per_s"]),
                f"{r['records_per_flush']} rec/flush, {r['flush_ms']} ms",
            )
        console.print(t)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--duration", type=float, default=8.0)
    parser.add_argument("--replay-frames", type=int, default=700_000)
    parser.add_argument("--micro-seconds", type=float, default=0.5)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--only", choices=("e2e", "replay", "micro"))
    parser.add_argument("--output", type=Path, default=BENCH / "results" / "latest.json")
    args = parser.parse_args()
    if args.quick:
        args.duration, args.replay_frames, args.micro_seconds = 4.0, 300_000, 0.25
    started = time.monotonic()
    results: dict[str, Any] = {
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "note": "simulator and collector share the same cores",
        },
        "git": _git_rev(),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    with tempfile.TemporaryDirectory(prefix="hundi-bench-") as tmp:
        if args.only in (None, "micro"):
            results["micro"] = run_micro(args.micro_seconds, log=console.log)
        if args.only in (None, "e2e", "replay"):
            results["end_to_end"] = end_to_end(
                args.duration, args.replay_frames, Path(tmp), synthetic=args.only != "replay"
            )
    results["bench_seconds"] = round(time.monotonic() - started, 1)
    print_tables(results)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2) + "\n")
    console.print(f"results: {args.output} ({results['bench_seconds']:.0f}s)")
    failed = [
        r["name"]
        for r in results.get("end_to_end", {}).get("runs", [])
        if not (r["balanced"] and r["stored_equals_summary"] and not r["lost"])
    ]
    if failed:
        console.print(f"[red]accounting or store check failed: {', '.join(failed)}")
        sys.exit(1)


def _git_rev() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
        )
        return out.stdout.strip()
    except OSError:
        return ""


if __name__ == "__main__":
    main()
