"""``hundi store check STORE [--repair]``: dead runs' logs, damaged parts, superseded files,
stale temp files.

Walks every partition folder of an embedded store and prints one line per problem and a
summary line. Exit 0 only when the store is clean, 1 when something was found (also when
``--repair`` fixed it: run again to see it clean), 2 for bad input (no such store).

A log segment no live writer holds (its run died before parting it) is reported with its
entries and any damaged bytes (a torn tail, an entry failing its checksum); ``--repair`` turns
it into parts exactly once (as the next writer's open would) and quarantines the damaged bytes.
``--repair`` moves damaged parts and stray files to ``STORE/.quarantine/`` (same relative
path), deletes superseded files (the compacted file that covers them holds their rows; hundi's
own readers list again when a file vanishes) and stale temp files (untouched for a minute: their
writer died). After it, any Parquet reader sees every parted row of the folder once per run
that stored it (two collectors of one stream each stored their copy: only hundi merges them).
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import click

from hundi.stores.base import StoreError, describe_url, scheme_of
from hundi.stores.embedded import wal
from hundi.stores.embedded.integrity import (
    KEPT_SUFFIX,
    QUARANTINE,
    REPORTED_SUFFIX,
    is_sound,
    problem,
    quarantine,
    reported,
)
from hundi.stores.embedded.layout import (
    TMP_PREFIX,
    PartFile,
    list_parts,
    parse_part,
    partition_dirs,
    split_live,
    stale_temps,
)
from hundi.stores.embedded.store import EmbeddedStore, parse_options, path_of_url

EXIT_CLEAN, EXIT_PROBLEMS, EXIT_BAD_INPUT = 0, 1, 2


CheckProgress = Callable[[int, int], None]  # (partitions walked, partitions in all)


def check_store(
    root: Path, *, repair: bool, progress: CheckProgress | None = None
) -> tuple[list[str], int, int]:
    """(one line per problem, partitions walked, parts checked)."""
    lines = _check_logs(root, repair=repair)
    parts_checked = 0
    directories = partition_dirs(root)
    for walked, directory in enumerate(directories):
        if progress is not None:
            progress(walked, len(directories))
        files = list_parts(directory)
        # A damaged compacted file does not supersede its inputs: they are live again (and
        # checked in turn), never deleted as superseded; so the split is redone without the
        # damaged files until no new damage turns up.
        damaged: set[Path] = set()
        checked: set[Path] = set()
        unverified: list[PartFile] = []  # could not be read: not known to hold its inputs' rows
        while True:
            sound = [f for f in files if f.path not in damaged]
            live, superseded = split_live(sound, verify=False)
            found = False
            for part in live:
                if part.path in checked:
                    continue
                checked.add(part.path)
                parts_checked += 1
                try:
                    reason = problem(part.path, part.crc)
                except FileNotFoundError:
                    continue  # deleted by a running writer's compaction meanwhile
                except OSError as e:  # no permission, an I/O error: not damage, never moved
                    why = e.strerror or e
                    lines.append(f"unreadable: {part.path}: {why} -> could not be checked")
                    unverified.append(part)
                    continue
                if reason is None:
                    continue
                damaged.add(part.path)
                found = True
                action = ""
                if repair:
                    target = quarantine(part.path, reason)
                    action = f" -> quarantined to {target}" if target else " -> could not be moved"
                lines.append(f"damaged: {part.path}: {reason}{action}")
            if not found:
                break
        for part in superseded:
            if any(holder.covers(part) for holder in unverified):
                lines.append(
                    f"superseded: {part.path}: kept: the compacted file holding its rows could "
                    "not be checked -> could not be repaired"
                )
                continue
            action = ""
            if repair:
                with contextlib.suppress(FileNotFoundError):
                    part.path.unlink()
                action = " -> deleted"
            lines.append(f"superseded: {part.path}: its rows are in a compacted file{action}")
        for path in stale_temps(directory):
            action = ""
            if repair:
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
                action = " -> deleted"
            lines.append(f"stale temp file: {path}: left by a writer that died{action}")
        for path in sorted(directory.iterdir()):
            if path.name.startswith(TMP_PREFIX) or parse_part(path) is not None:
                continue
            action = ""
            if repair and path.is_file():
                target = quarantine(path, "stray file")
                action = f" -> quarantined to {target}" if target else " -> could not be moved"
            lines.append(f"stray file: {path}: not a part of the store{action}")
    if repair:
        # what is left must now verify (a damaged compaction's inputs may be live again)
        for directory in directories:
            for part in split_live(list_parts(directory), verify=False)[0]:
                with contextlib.suppress(StoreError):  # unreadable: said above, left alone
                    is_sound(part.path, part.crc)
        EmbeddedStore(str(root)).close()  # a gap event for each part quarantined meanwhile
    named = " ".join(lines)
    for path in quarantined_files(root):
        if str(path) not in named:  # moved there before this check (by a reader or a repair)
            told = "; a gap event in the store describes it" if reported(path) else ""
            lines.append(f"{QUARANTINED}: {path}: {_HELD}{told}")
    if progress is not None:
        progress(len(directories), len(directories))
    return lines, len(directories), parts_checked


QUARANTINED = "quarantined"
_HELD = (
    "held out of the store, its rows are not read (move it back if it is sound; delete it "
    "once the loss is accounted for)"
)


def quarantined_files(root: Path, *, torn: bool = False) -> list[Path]:
    """Files in the store's quarantine: data no read returns until someone looks at it; with
    ``torn``, also the log tails of flushes a crash cut short (never stored, nothing to
    review)."""
    files = sorted(
        p
        for p in (root / QUARANTINE).rglob("*")
        if p.is_file() and not p.name.endswith((REPORTED_SUFFIX, KEPT_SUFFIX))
    )
    return files if torn else [p for p in files if wal.TORN_SUFFIX not in p.name]


def _check_logs(root: Path, *, repair: bool) -> list[str]:
    """One line per log segment of a dead run and per damaged byte range in it; with
    ``repair`` they are parted (and the damage quarantined) by opening the store for writing,
    and a segment still there afterwards (its recovery failed: the warning says why) is
    reported as not parted."""
    found: list[tuple[Path, list[wal.Entry], list[wal.Damage]]] = []
    for path in dead_segments(root):
        try:
            entries, damage = wal.scan(path)
        except FileNotFoundError:
            continue  # parted meanwhile (a writer's open)
        found.append((path, entries, damage))
    left: set[Path] = set()
    if repair and found:
        EmbeddedStore(str(root)).close()  # recovery on open
        left = set(dead_segments(root))
    lines: list[str] = []
    for path, entries, damage in found:
        action = ""
        if repair:
            action = _NOT_PARTED if path in left else " -> parted"
        rows = sum(entry.rows for entry in entries)
        lines.append(
            f"unparted log: {path}: {len(entries)} entries ({rows} rows) of a run that died{action}"
        )
        for bad in damage:
            kind = "torn tail" if bad.tail else "damaged entry"
            if repair:
                action = _NOT_PARTED if path in left else " -> quarantined"
            lines.append(f"{kind}: {path} bytes {bad.start}-{bad.end}: {bad.why}{action}")
    return lines


_NOT_PARTED = " -> could not be parted (see the warning above)"


def dead_segments(root: Path) -> list[Path]:
    """The log segments no live writer holds: their run died or stopped without parting."""
    dead = []
    for path in wal.segments(root):
        fd = wal.try_lock(path)
        if fd is not None:
            os.close(fd)
            dead.append(path)
    return dead


@contextlib.contextmanager
def _progress_bar() -> Iterator[CheckProgress | None]:
    """A progress bar on a terminal (every part of a big store is read and checksummed);
    nothing in logs and pipes."""
    if not sys.stderr.isatty():
        yield None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    bar = Progress(
        TextColumn("checking partitions"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        transient=True,
    )
    task = bar.add_task("check", total=None)

    def update(walked: int, total: int) -> None:
        bar.update(task, completed=walked, total=total)

    with bar:
        yield update


def _root(store_path: str) -> Path:
    """The store's folder, or one error line and exit 2."""
    try:
        if scheme_of(store_path) != "file":  # not a folder: path_of_url would mangle it
            raise StoreError(
                f"hundi store check checks an embedded store (a folder or file: URL), not "
                f"{describe_url(store_path)!r}"
            )
        root = path_of_url(store_path)
        parse_options(store_path, {})  # a typo in an option is bad input here too
        if not root.is_dir():
            raise StoreError(f"no store at {str(root)!r} (not a directory)")
        opened = EmbeddedStore(str(root), read_only=True)
        problem = opened.not_a_store()
        opened.close()
        if problem is not None:
            raise StoreError(problem)
    except StoreError as e:
        click.echo(str(e), err=True)
        sys.exit(EXIT_BAD_INPUT)
    return root


@click.group("store")
def store() -> None:
    """Maintain a store: check an embedded one; set up, compact or migrate a Cassandra one."""


@store.command("check")
@click.argument("store_path", metavar="STORE")
@click.option(
    "--repair",
    is_flag=True,
    help="Part dead runs' logs, quarantine damaged parts and log bytes, delete superseded and "
    "stale temp files.",
)
def check(store_path: str, repair: bool) -> None:
    """Verify every part file and log of the embedded store STORE (a folder or file: URL).

    One line per problem (dead run's log, damaged part, superseded file, stale temp file, stray
    file, a file held in quarantine), then a summary. Exit 0 when clean, 1 when problems were
    found (even if repaired; quarantined files stay a problem until someone moves them back or
    deletes them), 2 on bad input.
    """
    root = _root(store_path)
    try:
        with _progress_bar() as progress:
            lines, partitions, parts = check_store(root, repair=repair, progress=progress)
    except OSError as e:
        click.echo(f"cannot check {str(root)!r}: {e.strerror or e}", err=True)
        sys.exit(EXIT_BAD_INPUT)
    except StoreError as e:  # --repair of a store that cannot be written
        click.echo(f"cannot repair {str(root)!r}: {e}", err=True)
        sys.exit(EXIT_BAD_INPUT)
    for line in lines:
        click.echo(line)
    quarantined = len(quarantined_files(root, torn=True))
    held = f", {quarantined} file(s) in {root / QUARANTINE}" if quarantined else ""
    checked = f"{parts} live part(s) in {partitions} partition(s){held}"
    if not lines:
        click.echo(f"clean: {checked}")
        sys.exit(EXIT_CLEAN)
    failed = sum(" -> could not" in line for line in lines)
    left = sum(line.startswith(f"{QUARANTINED}:") for line in lines)
    if left == len(lines):
        done = "found"
    elif not repair:
        done = "found (run with --repair to fix)"
    elif failed:
        done = f"found, {failed} could not be repaired"
    else:
        done = "repaired"
    if left:  # --repair does not decide what quarantined data is worth: a person does
        done += f"; {left} quarantined file(s) to review"
    click.echo(f"{len(lines)} problem(s) {done}: {checked}")
    sys.exit(EXIT_PROBLEMS)


@store.command("flush")
@click.argument("store_path", metavar="STORE")
def flush(store_path: str) -> None:
    """Write the logs of stopped or crashed runs of the embedded store STORE as Parquet parts.

    Afterwards DuckDB, Polars or pyarrow reading the folder see every row those runs stored. A
    running collector's own log is left to it: it parts it at its size or age threshold
    (``part_bytes``, ``part_age_s``) and when it stops. Exit 0 when done, 1 when a stopped
    run's log could not be parted (the warning says why), 2 on bad input.
    """
    root = _root(store_path)
    try:
        EmbeddedStore(store_path).close()  # opening for writing parts dead runs' logs
    except StoreError as e:
        click.echo(f"cannot flush {str(root)!r}: {e}", err=True)
        sys.exit(EXIT_BAD_INPUT)
    stuck = dead_segments(root)
    if stuck:
        for path in stuck:
            click.echo(f"not parted: {path} (see the warning above)", err=True)
        click.echo(
            f"{len(stuck)} log segment(s) of stopped runs in {root} could not be written as "
            "Parquet parts; their rows stay readable by hundi.read",
            err=True,
        )
        sys.exit(EXIT_PROBLEMS)
    left = wal.segments(root)
    live = f"; {len(left)} log segment(s) of running collectors left to them" if left else ""
    click.echo(f"parted: every stopped run's log in {root} is in Parquet parts{live}")


def _add_cassandra_commands() -> None:
    # click-only module: the Cassandra driver is imported when one of them runs
    from hundi.stores.cassandra_admin import compact, init, migrate, roles

    store.add_command(compact)
    store.add_command(init)
    store.add_command(migrate)
    store.add_command(roles)


_add_cassandra_commands()
