"""``make bench``: hundi against cryptofeed and a bare picows+msgspec loop, same stream, same run.

Contenders, each a separate client process on the same Binance simulator stream (spot;
aggTrade, bookTicker and depth@100ms of four symbols):

- ``hundi+store``: ``hundi collect`` into the embedded store;
- ``hundi nostore``: the same command with a store that keeps nothing
  (``bench/collect_nostore.py``: hundi has no store-less mode, so the bench adds one);
- ``cryptofeed``: cryptofeed's Binance feed with no-op callbacks (``bench/cryptofeed_client.py``,
  run by the bench venv's python, ``make bench-venv``); skipped, and said so, without that venv;
- ``bare``: picows receive + one msgspec decode per frame (``bench/bare.py``).

Rates: the synthetic simulator paced at ``--rate`` ~1k, ~5k and ~10k messages/s, and a
pre-generated replay sent flat out (``--replay ... --speed max``), every client receiving the
whole replay. Every round runs every rate, and within a rate every contender one after the
other on the same simulator (the order rotates each round), so load from other processes on the
box falls on all of them alike.

Measured per run, on the client process only (psutil: user + system CPU of all its threads):

- paced: after the client's first frames and a warm-up, the CPU it used over a fixed window
  divided by the frames the simulator sent it in that window (its per-connection counter);
- max: the CPU from the connection's opening to the client's last frame, divided by the frames
  it received (the whole replay);
- ``frames/s`` over the same window; peak RSS over the whole process life.

What hundi+store's window does not hold: its embedded store writes Parquet parts from its log
every 32 MiB or 5 minutes and at the stop, outside a paced window and after the max window's last
frame. The figure is the collector's running cost; the CPU each hundi client spends stopping is
recorded per run (``stop_cpu_s``: for hundi+store it includes parting the whole run's log, so
hundi+store less hundi nostore bounds that deferred cost), and the store's full cost per frame,
parting included, is ``bench/store_cpu.py``'s.

Medians over the rounds, ratios hundi+store / cryptofeed (every rate) and hundi+store / bare
(max), and PASS/FAIL for the targets of issue 16. This is a measurement, not a test: it exits
0 whatever the targets say, non-zero only when a contender could not be run or hundi's own
accounting does not balance. Results: ``bench/results/vs_cryptofeed.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil
from rich.console import Console
from rich.table import Table

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(BENCH))

from frames import generate, write_recording  # noqa: E402
from trees import build_extensions  # noqa: E402

from hundi.simulator import SimulatorProcess  # noqa: E402
from hundi.simulator.binance.rules import BinanceVariant  # noqa: E402

SYMBOLS = ("BTCUSDT", "ETHUSDT", "BNBUSDT", "SOLUSDT")
CHANNELS = "trades,bbo,book"
STREAMS = [
    f"{s.lower()}@{suffix}" for s in SYMBOLS for suffix in ("aggTrade", "bookTicker", "depth@100ms")
]
CONTENDERS = ("hundi+store", "hundi nostore", "cryptofeed", "bare")
BASELINE = "hundi nostore@base"  # --baseline REV: the collector of another commit, same run
STORE_BASELINE = "hundi+store@base"  # and with its embedded store
BENCH_PYTHON = ROOT / ".bench-venv" / "bin" / "python"
# Targets of issue 16 (hundi with its embedded store)
MAX_RSS_MB = 250.0
MAX_BARE_RATIO = 2.0
console = Console(width=None if sys.stdout.isatty() else 160)


class Sampler:
    """Samples one process every 50 ms: (wall ns, CPU s) pairs and the peak RSS."""

    def __init__(self, pid: int) -> None:
        self.proc = psutil.Process(pid)
        self.peak_rss = 0
        self.samples: list[tuple[int, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def cpu(self) -> float:
        times = self.proc.cpu_times()
        return float(times.user + times.system)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.peak_rss = max(self.peak_rss, self.proc.memory_info().rss)
                self.samples.append((time.time_ns(), self.cpu()))
            except psutil.Error:
                return
            self._stop.wait(0.05)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def cpu_between(self, start_ns: int, end_ns: int) -> tuple[float, float]:
        """(CPU s, wall s) between the last sample at or before ``start_ns`` and the first at
        or after ``end_ns``: the window is never shorter than asked."""
        before = [s for s in self.samples if s[0] <= start_ns] or self.samples[:1]
        after = [s for s in self.samples if s[0] >= end_ns] or self.samples[-1:]
        (t0, c0), (t1, c1) = before[-1], after[0]
        return c1 - c0, (t1 - t0) / 1e9


def sim_stats(sim: SimulatorProcess) -> dict[str, Any]:
    with urllib.request.urlopen(f"{sim.rest_url}/sim/stats", timeout=10) as response:
        stats: dict[str, Any] = json.load(response)
    return stats


def connections_since(sim: SimulatorProcess, since_ns: int) -> list[dict[str, Any]]:
    """The simulator's records of the connections opened after ``since_ns`` (one client)."""
    return [c for c in sim_stats(sim)["connections"] if c["opened_ns"] >= since_ns]


def command(contender: str, sim: SimulatorProcess, tmp: Path, name: str) -> list[str]:
    """The client process of one contender; each stops itself (duration) or is stopped.
    ``hundi nostore@base`` and ``hundi+store@base`` are ``hundi nostore`` and ``hundi+store``
    with ``PYTHONPATH`` on another commit's ``src`` (see :func:`run_one`)."""
    long = "3600"  # the harness ends every run; this only bounds a forgotten process
    if contender.startswith("hundi"):
        store = str(tmp / f"store-{name}") if contender.startswith("hundi+store") else "null:"
        return [
            sys.executable, str(BENCH / "collect_nostore.py"), "collect", "binance",
            "--market", "spot", "--symbols", ",".join(SYMBOLS), "--channels", CHANNELS,
            "--endpoint", sim.ws_url, "--rest-endpoint", sim.rest_url, "--store", store,
            "--quarantine", str(tmp / f"quarantine-{name}.jsonl"),
            "--duration", long, "--summary-json", str(tmp / f"summary-{name}.json"),
        ]  # fmt: skip
    if contender == "cryptofeed":
        return [
            str(BENCH_PYTHON), str(BENCH / "cryptofeed_client.py"), "--ws", sim.ws_url,
            "--rest", sim.rest_url, "--symbols", ",".join(SYMBOLS), "--duration", long,
            # cryptofeed awaits each book's REST snapshot inside its frame handler, and the
            # simulator flooding at max speed answers REST seconds late: a 1 s silence is not
            # the end of the replay for it
            "--idle", "15",
        ]  # fmt: skip
    return [
        sys.executable, str(BENCH / "bare.py"), "--url", f"{sim.ws_url}/stream",
        "--streams", ",".join(STREAMS), "--duration", long,
    ]  # fmt: skip


def _wait(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        time.sleep(0.05)


def _sent(sim: SimulatorProcess, since_ns: int) -> int:
    return sum(c["frames_sent"] for c in connections_since(sim, since_ns))


def run_one(
    contender: str, sim: SimulatorProcess, tmp: Path, name: str, *, paced: bool,
    warmup_s: float, window_s: float, replay_frames: int,
) -> dict[str, Any]:  # fmt: skip
    """One contender on ``sim``: start, measure, stop; raises when it could not run."""
    launched_ns = time.time_ns()
    rest_before = sim_stats(sim)["rest_requests"]
    out_path = tmp / f"{name}.out"
    err_path = tmp / f"{name}.err"
    env = dict(os.environ, HUNDI_LOG_PATH=str(tmp / f"{name}.log"))
    if contender in (BASELINE, STORE_BASELINE):
        env["PYTHONPATH"] = str(tmp / "baseline" / "src")  # ahead of the editable install
    with out_path.open("w") as out, err_path.open("w") as err:
        proc = subprocess.Popen(command(contender, sim, tmp, name), stdout=out, stderr=err, env=env)
    sampler = Sampler(proc.pid)
    result: dict[str, Any] = {"contender": contender}
    try:
        _wait(lambda: _sent(sim, launched_ns) > 0 or proc.poll() is not None, 120, "no frames")
        if proc.poll() is not None:
            raise RuntimeError(f"exited with {proc.returncode}")
        if paced:
            time.sleep(warmup_s)  # imports, snapshots, first flushes: not the steady state
            t0, sent0 = time.time_ns(), _sent(sim, launched_ns)
            time.sleep(window_s)
            t1, sent1 = time.time_ns(), _sent(sim, launched_ns)
            frames = sent1 - sent0
            if contender.startswith("hundi"):
                result["stop_cpu_s"] = _stop_cpu(proc, sampler)
            else:
                proc.send_signal(signal.SIGKILL)
                proc.wait(timeout=120)
        else:
            # the whole replay: the client's own count and last frame time
            opened = min(c["opened_ns"] for c in connections_since(sim, launched_ns))
            if contender.startswith("hundi"):
                _wait(lambda: _sent(sim, launched_ns) >= replay_frames, 300, "replay not sent")
                summary_path = tmp / f"summary-{name}.json"
                _wait(lambda: _hundi_idle(sampler), 600, "collector never went idle")
                result["stop_cpu_s"] = _stop_cpu(proc, sampler)
                summary = json.loads(summary_path.read_text())
                frames = summary["frames"]["received"]
                t1 = max(s["last_frame_ns"] for s in summary["streams"].values())
            else:
                proc.wait(timeout=600)  # bare and cryptofeed stop after 1 s of silence
                report = json.loads(out_path.read_text().strip().splitlines()[-1])
                frames, t1 = report["frames"], report["last_ns"]
            t0 = opened
        if contender.startswith("hundi"):
            result.update(_hundi_checks(tmp / f"summary-{name}.json"))
    except Exception as exc:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        sampler.stop()
        tail = err_path.read_text()[-2000:] + out_path.read_text()[-2000:]
        raise RuntimeError(f"{name}: {exc}; client output:\n{tail}") from exc
    sampler.stop()
    cpu_s, wall_s = sampler.cpu_between(t0, t1)
    result.update(
        frames=frames,
        cpu_s=round(cpu_s, 3),
        wall_s=round(wall_s, 3),
        frames_per_s=round(frames / wall_s) if wall_s > 0 else 0,
        cpu_us_per_frame=round(1e6 * cpu_s / frames, 2) if frames else None,
        cpu_pct=round(100 * cpu_s / wall_s, 1) if wall_s > 0 else 0.0,
        peak_rss_mb=round(sampler.peak_rss / 2**20, 1),
        # exchangeInfo and depth snapshots: every contender but bare asks the simulator's REST
        rest_requests=sim_stats(sim)["rest_requests"] - rest_before,
    )
    return result


def _stop_cpu(proc: subprocess.Popen[bytes], sampler: Sampler) -> float:
    """SIGTERM a hundi client and return the CPU it spent stopping (closing its sockets, the
    final flush, and, for the embedded store, writing Parquet parts from its log for the whole
    run): its total CPU at exit (``wait4``'s rusage) less the CPU last sampled before the
    signal. Outside every measured window; hundi+store less hundi nostore is the store's share."""
    before = sampler.cpu()
    proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 120
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            proc.returncode = os.waitstatus_to_exitcode(status)
            return round(usage.ru_utime + usage.ru_stime - before, 3)
        if time.monotonic() > deadline:
            raise TimeoutError("the client did not stop within 120 s of SIGTERM")
        time.sleep(0.05)


def _hundi_idle(sampler: Sampler) -> bool:
    """The collector has processed everything sent: its CPU barely moves over 0.5 s."""
    samples = sampler.samples
    if len(samples) < 12:
        return False
    (t0, c0), (t1, c1) = samples[-11], samples[-1]
    return (c1 - c0) / max((t1 - t0) / 1e9, 1e-9) < 0.05


def _hundi_checks(summary_path: Path) -> dict[str, Any]:
    """hundi's own accounting of the run: every frame processed, filtered or rejected, and
    every record stored (for the null store: taken)."""
    summary = json.loads(summary_path.read_text())
    frames = summary["frames"]
    balanced = bool(summary["balanced"]) and frames["received"] == (
        frames["processed"] + frames["filtered"] + frames["rejected"]
    )
    lost = [s["lost"] for s in summary["stores"] if s["lost"]]
    return {
        "received": frames["received"],
        "balanced": balanced and not lost,
        "gaps": summary["gaps"],
        "resyncs": summary["resyncs"],
        "backpressure_s": summary.get("backpressure", {}).get("paused_s", 0.0),
    }


def run_rate(
    rate: str, rnd: int, tmp: Path, replay: list[Path], contenders: list[str], args: Any
) -> list[dict[str, Any]]:
    sim_args = ["--market", "spot", "--symbols", ",".join(SYMBOLS),
                "--max-send-buffer", str(1 << 31)]  # fmt: skip
    if rate == "max":
        for path in replay:
            sim_args += ["--replay", str(path)]
        sim_args += ["--speed", "max"]
    else:
        sim_args += ["--rate", rate]
    # a different order each round, so no contender always runs first on a fresh simulator
    shift = rnd % len(contenders)
    order = contenders[shift:] + contenders[:shift]
    runs = []
    with SimulatorProcess(sim_args, startup_timeout=180) as sim:
        for contender in order:
            name = f"r{rnd}-{rate}-{contender.replace(' ', '-').replace('+', '-')}"
            console.log(f"round {rnd + 1}, rate {rate}: {contender}")
            run = run_one(
                contender, sim, tmp, name, paced=rate != "max", warmup_s=args.warmup,
                window_s=args.window, replay_frames=args.replay_sent,
            )  # fmt: skip
            run.update(rate=rate, round=rnd)
            runs.append(run)
    return runs


def medians(runs: list[dict[str, Any]], rates: list[str], contenders: list[str]) -> dict[str, Any]:
    table: dict[str, Any] = {}
    for rate in rates:
        for contender in contenders:
            mine = [r for r in runs if r["rate"] == rate and r["contender"] == contender]
            if not mine:
                continue
            table.setdefault(rate, {})[contender] = {
                key: statistics.median(r[key] for r in mine)
                for key in ("cpu_us_per_frame", "frames_per_s", "peak_rss_mb", "cpu_pct")
            } | {"rounds": len(mine), "all_cpu_us_per_frame": [r["cpu_us_per_frame"] for r in mine]}
    return table


def verdicts(table: dict[str, Any]) -> list[dict[str, Any]]:
    """PASS/FAIL per target of issue 16, from the medians."""
    out = []
    for rate, row in table.items():
        hundi = row.get("hundi+store")
        if hundi is None:
            continue
        cf = row.get("cryptofeed")
        if cf is not None:
            ratio = hundi["cpu_us_per_frame"] / cf["cpu_us_per_frame"]
            out.append({"target": f"{rate}: hundi+store CPU/frame <= cryptofeed",
                        "value": f"{ratio:.2f}x", "pass": ratio <= 1.0})  # fmt: skip
        bare = row.get("bare")
        if rate == "max" and bare is not None:
            ratio = hundi["cpu_us_per_frame"] / bare["cpu_us_per_frame"]
            out.append({"target": f"max: hundi+store CPU/frame <= {MAX_BARE_RATIO:g}x bare",
                        "value": f"{ratio:.2f}x", "pass": ratio <= MAX_BARE_RATIO})  # fmt: skip
    peak = max((row["hundi+store"]["peak_rss_mb"] for row in table.values()
                if "hundi+store" in row), default=None)  # fmt: skip
    if peak is not None:
        out.append({"target": f"hundi+store peak RSS <= {MAX_RSS_MB:g} MB",
                    "value": f"{peak:.0f} MB", "pass": peak <= MAX_RSS_MB})  # fmt: skip
    return out


def print_tables(
    table: dict[str, Any], checks: list[dict[str, Any]], contenders: list[str]
) -> None:
    t = Table(title="Client CPU µs per frame (median over rounds) | frames/s | peak RSS")
    t.add_column("rate")
    for contender in contenders:
        t.add_column(contender, justify="right")
    t.add_column("store/cryptofeed", justify="right")
    t.add_column("store/bare", justify="right")
    t.add_column("nostore/bare", justify="right")
    t.add_column("nostore/base", justify="right")
    t.add_column("store/base", justify="right")
    for rate, row in table.items():
        cells = []
        for contender in contenders:
            m = row.get(contender)
            cells.append(
                f"{m['cpu_us_per_frame']:.1f} µs | {m['frames_per_s']:,.0f}/s | "
                f"{m['peak_rss_mb']:.0f} MB"
                if m
                else "-"
            )

        def ratio(a: str, b: str, row: dict[str, Any] = row) -> str:
            if a in row and b in row:
                return f"{row[a]['cpu_us_per_frame'] / row[b]['cpu_us_per_frame']:.2f}x"
            return "-"

        t.add_row(rate, *cells, ratio("hundi+store", "cryptofeed"), ratio("hundi+store", "bare"),
                  ratio("hundi nostore", "bare"), ratio("hundi nostore", BASELINE),
                  ratio("hundi+store", STORE_BASELINE))  # fmt: skip
    console.print(t)
    for check in checks:
        mark = "[green]PASS" if check["pass"] else "[red]FAIL"
        console.print(f"{mark}[/] {check['target']}: {check['value']}")


def print_stop_costs(runs: list[dict[str, Any]], rates: list[str]) -> None:
    """The hundi clients' CPU spent stopping, per frame of the whole run (median over rounds):
    hundi+store's includes writing Parquet parts from its log, which no window holds."""
    for rate in rates:
        cells = []
        for contender in ("hundi+store", "hundi nostore"):
            mine = [r for r in runs if r["rate"] == rate and r["contender"] == contender]
            per_frame = [1e6 * r["stop_cpu_s"] / r["received"] for r in mine if r.get("received")]
            if per_frame:
                cells.append(f"{contender} {statistics.median(per_frame):.1f} µs")
        if cells:
            console.print(f"stop CPU per frame of the run, {rate}: " + ", ".join(cells))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--rates",
        default="2000,10000,20000,max",
        help="simulator --rate values (messages/s it generates, about half of them on the "
        "streams subscribed: ~1.1k, ~5.4k, ~11k frames/s) and/or max",
    )
    parser.add_argument("--warmup", type=float, default=2.0, help="paced: s before the window")
    parser.add_argument("--window", type=float, default=6.0, help="paced: measured seconds")
    parser.add_argument("--replay-frames", type=int, default=600_000)
    parser.add_argument("--contenders", default=",".join(CONTENDERS))
    parser.add_argument(
        "--baseline",
        metavar="REV",
        help=f"add '{BASELINE}' and '{STORE_BASELINE}': hundi without and with its store at "
        "git revision REV (before/after)",
    )
    parser.add_argument("--quick", action="store_true", help="1 round, short windows, 200k replay")
    parser.add_argument("--output", type=Path, default=BENCH / "results" / "vs_cryptofeed.json")
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.warmup, args.window, args.replay_frames = 1, 1.5, 4.0, 200_000
    contenders = [c for c in args.contenders.split(",") if c]
    if args.baseline:
        contenders += [BASELINE, STORE_BASELINE]
    unknown = sorted(set(contenders) - {*CONTENDERS, BASELINE, STORE_BASELINE})
    if unknown:
        parser.error(f"unknown contenders {unknown}; known: {', '.join(CONTENDERS)}")
    notes = []
    if "cryptofeed" in contenders and not BENCH_PYTHON.exists():
        contenders.remove("cryptofeed")
        notes.append("cryptofeed skipped: no bench venv (make bench-venv)")
        console.print(f"[yellow]{notes[-1]}")
    rates = [r for r in args.rates.split(",") if r]
    started = time.monotonic()
    runs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="hundi-vs-") as tmp_name:
        tmp = Path(tmp_name)
        if args.baseline:
            _export(args.baseline, tmp / "baseline")
        replay: list[Path] = []
        args.replay_sent = 0  # paced rates only: no replay (``--rates`` without max)
        if "max" in rates:
            console.log(f"replay: generating {args.replay_frames:,} spot frames")
            gen = generate(BinanceVariant.SPOT, SYMBOLS, args.replay_frames)
            args.replay_sent = len(gen.frames)
            replay = write_recording(gen, tmp / "replay")
            del gen
        for rnd in range(args.rounds):
            for rate in rates:
                runs.extend(run_rate(rate, rnd, tmp, replay, contenders, args))
    table = medians(runs, rates, contenders)
    checks = verdicts(table)
    print_tables(table, checks, contenders)
    print_stop_costs(runs, rates)
    unbalanced = [f"round {r['round'] + 1} {r['rate']} {r['contender']}" for r in runs
                  if r["contender"].startswith("hundi") and not r["balanced"]]  # fmt: skip
    results = {
        "machine": {"cpus": os.cpu_count(), "load_avg": os.getloadavg()},
        "git": _git_rev(),
        "baseline": args.baseline,
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "bench_seconds": round(time.monotonic() - started, 1),
        "notes": notes,
        "medians": table,
        "targets": checks,
        "runs": runs,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2) + "\n")
    console.print(f"results: {args.output} ({results['bench_seconds']:.0f}s)")
    if unbalanced:
        console.print(f"[red]hundi's accounting does not balance: {', '.join(unbalanced)}")
        sys.exit(1)


def _export(rev: str, into: Path) -> None:
    """``src/`` of git revision ``rev`` into ``into`` (the baseline contender's code)."""
    into.mkdir(parents=True)
    archive = subprocess.run(
        ["git", "archive", rev, "src"], cwd=ROOT, capture_output=True, check=False
    )
    if archive.returncode:
        sys.exit(f"--baseline {rev}: {archive.stderr.decode().strip()}")
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive.stdout, check=True)
    build_extensions(into / "src")


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
