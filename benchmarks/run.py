"""Compare gateway with aioftp 0.28 and pyftpdlib on loopback.

    python benchmarks/run.py [--size-mib 256] [--clients 200] [--rounds 3]
                             [--only gateway,aioftp,pyftpdlib] [--markdown out.md]

Each server runs in its own process serving its own temporary directory on local
disk to ``bench``/``bench``.  Throughput metrics are interleaved (every round runs
each metric on every server in turn, in a rotating order) and reported as the
median of the rounds.  Memory is sampled from the server processes with psutil.
See benchmarks/README.md for what each row means and the targets.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import psutil

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import loadgen  # noqa: E402

HOST = "127.0.0.1"
LOGIN = PASSWORD = "bench"
MIB = 1 << 20
ALL_SERVERS = ("gateway", "aioftp", "pyftpdlib")
SMALL_FILE = MIB  # the concurrent transfers move 1 MiB each
BIG_NAME = "big.bin"


# -- server processes ------------------------------------------------------------------------
class ServerProcess:
    """One server in its own process, on a free loopback port."""

    def __init__(self, name: str, root: Path, log_dir: Path, aioftp_loop: str) -> None:
        self.name = name
        self.root = root
        self.log_path = log_dir / f"{name}.log"
        self.aioftp_loop = aioftp_loop
        self.popen: subprocess.Popen | None = None
        self.ps: psutil.Process | None = None
        self.port = 0
        self.starts = 0
        self.failed_starts = 0
        self.ready = 0  # successful starts (greeted)
        self.broken = ""
        self.exits: list[str] = []

    def argv(self) -> list[str]:
        py = sys.executable
        if self.name == "gateway":
            return [
                py,
                "-m",
                "gateway",
                "--user",
                LOGIN,
                "--pass",
                PASSWORD,
                "-d",
                str(self.root),
                "--host",
                HOST,
                "--port",
                str(self.port),
                "-q",
            ]
        script = str(HERE / "servers.py")
        extra = ["--loop", self.aioftp_loop] if self.name == "aioftp" else []
        return [py, script, self.name, "--dir", str(self.root), "--port", str(self.port), *extra]

    def start(self, timeout: float = 20.0) -> None:
        self.port = _free_port()
        log = open(self.log_path, "ab")
        log.write(f"--- start #{self.starts + 1}: {' '.join(self.argv())}\n".encode())
        log.flush()
        self.popen = subprocess.Popen(
            self.argv(),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=str(self.root),
        )
        log.close()
        self.ps = psutil.Process(self.popen.pid)
        self.starts += 1
        deadline = time.monotonic() + timeout
        while True:
            if self.popen.poll() is not None:
                raise RuntimeError(
                    f"{self.name} exited with {self.popen.returncode} on start: {self.log_tail()}"
                )
            try:
                with socket.create_connection((HOST, self.port), timeout=1) as sock:
                    if sock.recv(64).startswith(b"220"):
                        sock.sendall(b"QUIT\r\n")
                        sock.recv(64)
                        self.ready += 1
                        return
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(
                    f"{self.name} did not greet within {timeout}s: {self.log_tail()}"
                )
            time.sleep(0.05)

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def ensure_running(self) -> str | None:
        """Start or restart a dead server; return a note when that happened.

        Raises RuntimeError when the server cannot be started (after two failed
        starts the server is given up on, so a broken server costs little time).
        """
        if self.alive():
            return None
        if self.broken:
            raise RuntimeError(self.broken)
        note = None
        if self.popen is not None:
            note = f"{self.name} process had exited (rc={self.popen.returncode}); restarted"
            self.exits.append(note)
        try:
            self.start()
        except Exception as exc:
            self.failed_starts += 1
            if self.failed_starts >= 2:
                self.broken = str(exc)[:300]
            raise
        return note

    def rss(self) -> int:
        return self.ps.memory_info().rss if self.ps else 0

    def cpu(self) -> float:
        return sum(self.cpu_split())

    def cpu_split(self) -> tuple[float, float]:
        """(user, system) CPU seconds so far."""
        try:
            times = self.ps.cpu_times()
            return times.user, times.system
        except (psutil.Error, AttributeError):
            return 0.0, 0.0

    def minor_faults(self) -> int:
        """Minor page faults so far (Linux): fresh memory touched, e.g. big buffers."""
        try:
            with open(f"/proc/{self.popen.pid}/stat") as stat:
                return int(stat.read().rsplit(")", 1)[1].split()[7])
        except (OSError, AttributeError, ValueError, IndexError):
            return 0

    def vm_hwm(self) -> int | None:
        """Kernel-tracked peak RSS (Linux), a cross-check for the sampler."""
        try:
            with open(f"/proc/{self.popen.pid}/status") as status:
                for line in status:
                    if line.startswith("VmHWM:"):
                        return int(line.split()[1]) * 1024
        except (OSError, AttributeError, ValueError):
            return None
        return None

    def event_loop(self) -> str:
        """Which loop the process really runs, from its mapped libraries."""
        if self.name == "pyftpdlib":
            return "pyftpdlib ioloop (epoll)"
        try:
            for mapping in self.ps.memory_maps(grouped=True):
                if "uvloop" in mapping.path:
                    return "uvloop"
        except (psutil.Error, AttributeError):
            return "?"
        return "asyncio"

    def log_tail(self, lines: int = 5) -> str:
        try:
            text = self.log_path.read_text(errors="replace").strip().splitlines()
        except OSError:
            return ""
        text = [line for line in text if not line.startswith("--- start")]
        return " | ".join(text[-lines:])

    def stop(self) -> None:
        if self.popen is None or self.popen.poll() is not None:
            return
        self.popen.terminate()
        try:
            self.popen.wait(5)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait(5)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


class RssSampler(threading.Thread):
    """Peak RSS of every registered server, sampled every ``interval`` seconds."""

    def __init__(self, servers: dict[str, ServerProcess], interval: float = 0.05) -> None:
        super().__init__(daemon=True)
        self.servers = servers
        self.interval = interval
        self.peak: dict[str, int] = {name: 0 for name in servers}
        self.window: dict[str, int] = {name: 0 for name in servers}  # since reset_window()
        self.samples = 0
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.wait(self.interval):
            for name, server in self.servers.items():
                if not server.ready:
                    continue
                try:
                    rss = server.rss()
                except psutil.Error:
                    continue
                if rss > self.peak[name]:
                    self.peak[name] = rss
                if rss > self.window[name]:
                    self.window[name] = rss
            self.samples += 1

    def reset_window(self, name: str) -> None:
        self.window[name] = 0

    def stop(self) -> None:
        self._stop_event.set()
        self.join()


# -- measurements ------------------------------------------------------------------------------
@dataclass
class Outcome:
    value: float | None = None  # None: the metric failed for this server this round
    failures: int = 0  # failed clients (concurrency metrics)
    clients: int = 0
    no_greeting: int = 0
    reason: str = ""  # why it failed / what went wrong
    extra: dict = field(default_factory=dict)


async def _curl(args: list[str], timeout: float) -> tuple[int, str, str, float]:
    started = time.perf_counter()
    proc = await asyncio.create_subprocess_exec(
        "curl",
        "-sS",
        "--max-time",
        str(int(timeout)),
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout + 10)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        return -1, "", "curl hung", time.perf_counter() - started
    return (
        proc.returncode,
        out.decode(errors="replace"),
        err.decode(errors="replace").strip(),
        time.perf_counter() - started,
    )


def _url(server: ServerProcess, name: str) -> str:
    return f"ftp://{LOGIN}:{PASSWORD}@{HOST}:{server.port}/{name}"


class Bench:
    def __init__(
        self,
        args: argparse.Namespace,
        servers: dict[str, ServerProcess],
        source: Path,
        payload: bytes,
        sampler: RssSampler,
    ) -> None:
        self.args = args
        self.sampler = sampler
        self.hwm_events: list[str] = []  # where the kernel's peak RSS jumped
        self.servers = servers
        self.source = source
        self.size = args.size_mib * MIB
        self.payload = payload
        self.curl_timeout = 60 + args.size_mib  # generous: 1 MiB/s would still finish
        self.cpu: dict[str, Counter] = {name: Counter() for name in servers}
        self.notes: list[str] = []

    async def single_stor(self, server: ServerProcess) -> Outcome:
        target = server.root / BIG_NAME
        rc, _, err, wall = await _curl(
            ["-T", str(self.source), _url(server, BIG_NAME)], self.curl_timeout
        )
        if rc != 0:
            return Outcome(reason=f"curl rc={rc}: {err[:100]}")
        stored = target.stat().st_size if target.exists() else -1
        if stored != self.size:
            return Outcome(reason=f"stored {stored} bytes, expected {self.size}")
        return Outcome(self.args.size_mib / wall)

    async def single_retr(self, server: ServerProcess) -> Outcome:
        rc, out, err, wall = await _curl(
            ["-o", "/dev/null", "-w", "%{size_download}", _url(server, BIG_NAME)], self.curl_timeout
        )
        if rc != 0:
            return Outcome(reason=f"curl rc={rc}: {err[:100]}")
        if out.strip() != str(self.size):
            return Outcome(reason=f"downloaded {out.strip()} bytes, expected {self.size}")
        return Outcome(self.args.size_mib / wall)

    async def logins(self, server: ServerProcess) -> Outcome:
        res = await loadgen.logins(
            HOST, server.port, self.args.clients, LOGIN, PASSWORD, timeout=self.args.client_timeout
        )
        return self._load_outcome(res, res.ok / res.wall if res.ok else None)

    async def many_retr(self, server: ServerProcess) -> Outcome:
        names = [f"r{i:03d}.bin" for i in range(self.args.clients)]
        res = await loadgen.transfers(
            HOST,
            server.port,
            names,
            "retr",
            LOGIN,
            PASSWORD,
            expected=SMALL_FILE,
            setup_timeout=self.args.client_timeout,
            timeout=self.args.client_timeout * 2,
        )
        return self._load_outcome(res, res.bytes / MIB / res.wall if res.ok else None)

    async def many_stor(self, server: ServerProcess) -> Outcome:
        names = [f"w{i:03d}.bin" for i in range(self.args.clients)]
        res = await loadgen.transfers(
            HOST,
            server.port,
            names,
            "stor",
            LOGIN,
            PASSWORD,
            payload=self.payload,
            setup_timeout=self.args.client_timeout,
            timeout=self.args.client_timeout * 2,
        )
        # trust the disk, not only the 226: count short files as failures too
        short = 0
        if res.ok:
            short = sum(
                1
                for n in names
                if not (server.root / n).exists() or (server.root / n).stat().st_size != SMALL_FILE
            )
        outcome = self._load_outcome(res, res.bytes / MIB / res.wall if res.ok else None)
        if short > res.failed:
            outcome.failures = short
            outcome.reason = (
                outcome.reason + "; " if outcome.reason else ""
            ) + f"{short} stored files have the wrong size"
        return outcome

    def _load_outcome(self, res: loadgen.LoadResult, value: float | None) -> Outcome:
        reason = res.reasons() if res.failed else ""
        if value is None and not reason:
            reason = "no client succeeded"
        return Outcome(
            value,
            res.failed,
            res.clients,
            res.no_greeting,
            reason,
            {"wall": round(res.wall, 3), "setup_wall": round(res.setup_wall, 3)},
        )

    async def measure(self, metric: str, server: ServerProcess, rnd: int = 0) -> Outcome:
        try:
            note = server.ensure_running()
        except Exception as exc:
            return Outcome(reason=f"server not running: {exc}"[:300])
        if note:
            self.notes.append(note)
        method = getattr(self, metric)
        user_before, sys_before = server.cpu_split()
        faults_before = server.minor_faults()
        hwm_before = server.vm_hwm() or 0
        self.sampler.reset_window(server.name)
        try:
            outcome = await method(server)
        except Exception as exc:  # the benchmark goes on with the next server
            outcome = Outcome(reason=f"{type(exc).__name__}: {exc}"[:160])
        await asyncio.sleep(0.06)  # one more RSS sample
        user_after, sys_after = server.cpu_split()
        cpu = (user_after - user_before) + (sys_after - sys_before)
        self.cpu[server.name][metric] += cpu
        hwm_after = server.vm_hwm() or 0
        outcome.extra.update(
            cpu_s=round(cpu, 3),
            cpu_sys_s=round(sys_after - sys_before, 3),
            minor_faults=server.minor_faults() - faults_before,
            rss_peak_mib=round(self.sampler.window[server.name] / MIB, 1),
            vm_hwm_mib=round(hwm_after / MIB, 1),
        )
        if hwm_after > hwm_before + 2 * MIB:
            self.hwm_events.append(
                f"{server.name} VmHWM {hwm_before / MIB:.0f} -> {hwm_after / MIB:.0f} MiB "
                f"during {metric} (round {rnd})"
            )
        if not server.alive():
            outcome.reason = (
                outcome.reason + "; " if outcome.reason else ""
            ) + f"server died (rc={server.popen.returncode}): {server.log_tail(3)}"
            if outcome.value is not None and metric in ("single_stor", "single_retr"):
                outcome.value = None
        if metric in ("single_stor", "many_stor"):
            await asyncio.to_thread(os.sync)  # write-back must not hit the next measurement
        return outcome

    async def idle_sessions(self, server: ServerProcess, warmup: bool) -> Outcome:
        """RSS growth per idle logged-in session, KiB."""
        note = server.ensure_running()
        if note:
            self.notes.append(note)
        if warmup:  # first-use imports and caches do not belong to the sessions
            ctl, _ = await loadgen.open_idle(HOST, server.port, 1, LOGIN, PASSWORD)
            await loadgen.close_idle(ctl)
        await asyncio.sleep(0.5)
        before = await _settled_rss(server)
        controls, res = await loadgen.open_idle(
            HOST, server.port, self.args.clients, LOGIN, PASSWORD, timeout=self.args.client_timeout
        )
        try:
            await asyncio.sleep(1.0)
            after = await _settled_rss(server)
        finally:
            await loadgen.close_idle(controls)
        if not res.ok:
            return Outcome(None, res.failed, res.clients, res.no_greeting, res.reasons())
        value = (after - before) / 1024 / res.ok
        return Outcome(
            value,
            res.failed,
            res.clients,
            res.no_greeting,
            res.reasons() if res.failed else "",
            {"before_mib": round(before / MIB, 1), "after_mib": round(after / MIB, 1)},
        )


async def _settled_rss(server: ServerProcess, samples: int = 5) -> int:
    values = []
    for _ in range(samples):
        values.append(server.rss())
        await asyncio.sleep(0.1)
    return int(statistics.median(values))


METRICS = [  # (key, label, unit)
    ("single_stor", "single-stream STOR {size} MiB (curl)", "MiB/s"),
    ("single_retr", "single-stream RETR {size} MiB (curl)", "MiB/s"),
    ("logins", "{clients} concurrent logins", "logins/s"),
    ("many_retr", "{clients} concurrent 1 MiB RETR", "MiB/s"),
    ("many_stor", "{clients} concurrent 1 MiB STOR", "MiB/s"),
]


# -- report --------------------------------------------------------------------------------------
def _fmt(value: float | None, digits: int = 1) -> str:
    if value is None:
        return "fail"
    return f"{value:,.{digits}f}" if abs(value) < 100 or digits == 0 else f"{value:,.0f}"


def build_report(
    names: list[str],
    results: dict,
    idle: dict,
    fresh: dict,
    peak: dict,
    hwm: dict,
    args: argparse.Namespace,
    cpu: dict[str, Counter],
) -> tuple[list[list[str]], list[str]]:
    header = ["metric", *names]
    ratio_pairs = [
        (a, b)
        for a, b in (("gateway", "aioftp"), ("gateway", "pyftpdlib"))
        if a in names and b in names
    ]
    header += [f"{a}/{b}" for a, b in ratio_pairs]
    rows = [header]
    footnotes: list[str] = []

    def add(
        label: str,
        values: dict[str, float | None],
        cells: dict[str, str],
        ratio: bool,
        floor: float = 0.0,
    ) -> None:
        row = [label] + [cells.get(n, "-") for n in names]
        for a, b in ratio_pairs:
            va, vb = values.get(a), values.get(b)
            usable = ratio and va is not None and vb is not None and va > floor and vb > floor
            row.append(f"{va / vb:.2f}x" if usable else "-")
        rows.append(row)

    for key, label, unit in METRICS:
        label = label.format(size=args.size_mib, clients=args.clients)
        medians: dict[str, float | None] = {}
        cells: dict[str, str] = {}
        fail_cells: dict[str, str] = {}
        any_failures = False
        for n in names:
            rounds: list[Outcome] = results[key][n]
            ok = [o.value for o in rounds if o.value is not None]
            medians[n] = statistics.median(ok) if ok else None
            cell = _fmt(medians[n], 0 if unit == "logins/s" else 1)
            bad = [o for o in rounds if o.value is None]
            if bad:
                cell += f" ({len(bad)}/{len(rounds)} rounds failed)" if ok else ""
                footnotes.append(f"{n} / {label}: {bad[0].reason}")
            cells[n] = cell
            total_fail = sum(o.failures for o in rounds)
            total_clients = sum(o.clients for o in rounds)
            if total_clients:
                fail_cells[n] = f"{total_fail}/{total_clients}"
                any_failures = True
                if total_fail and not bad:
                    footnotes.append(
                        f"{n} / {label}: {next(o.reason for o in rounds if o.failures)}"
                    )
                greet = sum(o.no_greeting for o in rounds)
                if greet:
                    fail_cells[n] += f" ({greet} no greeting)"
        add(f"{label}, {unit}", medians, cells, True)
        if any_failures:
            add("  failed clients (all rounds)", {}, fail_cells, False)

    peaks = {n: peak[n] / MIB if peak.get(n) else None for n in names}
    add("peak RSS, MiB (lower is better)", peaks, {n: _fmt(peaks[n]) for n in names}, True)
    hwms = {n: hwm[n] / MIB if hwm.get(n) else None for n in names}
    add("  kernel VmHWM, MiB (cross-check)", hwms, {n: _fmt(hwms[n]) for n in names}, True)
    for title, data in (
        (f"idle session, KiB each ({args.clients}, after the transfers; lower is better)", idle),
        (f"idle session, KiB each ({args.clients}, fresh process; lower is better)", fresh),
    ):
        values = {n: data[n].value if n in data else None for n in names}
        cells = {}
        for n in names:
            o = data.get(n)
            cells[n] = _fmt(values[n])
            if o is not None and (o.failures or o.value is None):
                if o.failures:
                    cells[n] += f" ({o.failures} failed)"
                footnotes.append(f"{n} / {title}: {o.reason}")
        add(title, values, cells, True, floor=1.0)  # a ratio of two near-zero growths means nothing
    cpu_total = {n: sum(cpu[n].values()) for n in names}
    add(
        "server CPU time, whole run, s (info)",
        cpu_total,
        {n: _fmt(cpu_total[n]) for n in names},
        False,
    )
    return rows, _group_footnotes(footnotes)


def _group_footnotes(footnotes: list[str]) -> list[str]:
    """One line per (server, reason): a dead server fails every row the same way."""
    grouped: dict[tuple[str, str], list[str]] = {}
    for note in footnotes:
        head, _, reason = note.partition(": ")
        server, _, label = head.partition(" / ")
        reason = reason.removeprefix("server not running: ").removeprefix("RuntimeError: ")
        grouped.setdefault((server, reason), []).append(label)
    out = []
    for (server, reason), labels in grouped.items():
        where = labels[0] if len(labels) == 1 else f"{len(labels)} rows"
        out.append(f"{server} / {where}: {reason}")
    return out


def _log_summary(name: str, log_dir: Path) -> list[str]:
    """What a server wrote to stdout/stderr (all run quiet: anything there is an error)."""
    notes = []
    for path in sorted(log_dir.glob(f"{name}*.log")):
        lines = [
            ln
            for ln in path.read_text(errors="replace").splitlines()
            if ln.strip() and not ln.startswith(("--- start", "loop="))
        ]
        if not lines:
            continue
        kinds: Counter = Counter()  # the exception line that ends each traceback
        for i, line in enumerate(lines):
            if line.startswith("Traceback"):
                j = i + 1
                while j < len(lines) and lines[j].startswith(" "):
                    j += 1
                if j < len(lines):
                    kinds[lines[j].strip()[:120]] += 1
        summary = f"{path.name}: {len(lines)} log line(s), {sum(kinds.values())} traceback(s)"
        if kinds:
            summary += "; " + ", ".join(f"{n}x {k}" for k, n in kinds.most_common(3))
        else:
            summary += "; first: " + lines[0][:160]
        notes.append(summary)
    return notes


def write_files(
    args: argparse.Namespace,
    header: list[str],
    rows: list[list[str]],
    notes: list[str],
    results: dict,
    idle: dict,
    fresh: dict,
    peak: dict,
    hwm: dict,
    cpu: dict[str, Counter],
    elapsed: float,
) -> None:
    """--markdown and --json outputs."""
    if args.markdown:
        md = [
            "# FTP server benchmark",
            "",
            *[f"- {m}" for m in header],
            "",
            render_markdown(rows),
            "",
        ]
        if notes:
            md += ["Notes:", "", *[f"- {line}" for line in notes], ""]
        md += [
            "<details><summary>every round</summary>",
            "",
            "| metric | server | value per round | server CPU s (sys) per round "
            "| minor page faults per round | sampled peak RSS MiB |",
            "|---|---|---|---|---|---|",
        ]
        for key, _, unit in METRICS:
            for n in args.names:
                rounds = results[key][n]
                vals = ", ".join(_fmt(o.value) for o in rounds)
                cpus = ", ".join(
                    f"{o.extra.get('cpu_s', 0):.2f} ({o.extra.get('cpu_sys_s', 0):.2f})"
                    for o in rounds
                )
                faults = ", ".join(f"{o.extra.get('minor_faults', 0):,}" for o in rounds)
                rss = ", ".join(f"{o.extra.get('rss_peak_mib', 0):.0f}" for o in rounds)
                md.append(f"| {key} ({unit}) | {n} | {vals} | {cpus} | {faults} | {rss} |")
        md += ["", "</details>", ""]
        Path(args.markdown).parent.mkdir(parents=True, exist_ok=True)
        Path(args.markdown).write_text("\n".join(md))
    if args.json:
        raw = {
            "machine": header,
            "args": dict(vars(args)),
            "results": {
                k: {n: [o.__dict__ for o in v] for n, v in d.items()} for k, d in results.items()
            },
            "idle": {n: o.__dict__ for n, o in idle.items()},
            "idle_fresh": {n: o.__dict__ for n, o in fresh.items()},
            "peak_rss": peak,
            "vm_hwm": hwm,
            "cpu_seconds": {n: dict(c) for n, c in cpu.items()},
            "notes": notes,
            "elapsed": elapsed,
        }
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(raw, indent=1, default=str))


def render_text(rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = []
    for index, row in enumerate(rows):
        cells = [row[0].ljust(widths[0])] + [
            c.rjust(w) for c, w in zip(row[1:], widths[1:], strict=True)
        ]
        lines.append(" | ".join(cells))
        if index == 0:
            lines.append("-+-".join("-" * w for w in widths))
    return "\n".join(lines)


def render_markdown(rows: list[list[str]]) -> str:
    out = [
        "| " + " | ".join(rows[0]) + " |",
        "|" + "|".join(["---"] + ["---:"] * (len(rows[0]) - 1)) + "|",
    ]
    out += ["| " + " | ".join(c.replace("|", "\\|") for c in r) + " |" for r in rows[1:]]
    return "\n".join(out)


def filesystem_of(path: Path) -> str:
    """``fstype on device`` for the mount holding ``path`` (tmpfs would skew STOR)."""
    best = None
    resolved = str(path.resolve())
    for part in psutil.disk_partitions(all=True):
        mount = part.mountpoint.rstrip("/") + "/"
        if (resolved + "/").startswith(mount) and (best is None or len(mount) > len(best[0])):
            best = (mount, part)
    if best is None:
        return "unknown filesystem"
    return f"{best[1].fstype} on {best[1].device}"


def machine_info(servers: dict[str, ServerProcess], client_loop: str, work: Path) -> list[str]:
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    versions = []
    for module in ("aioftp", "pyftpdlib", "uvloop"):
        with contextlib.suppress(Exception):
            from importlib.metadata import version

            versions.append(f"{module} {version(module)}")
    with contextlib.suppress(Exception):
        from importlib.metadata import version

        versions.insert(0, f"gateway {version('gateway')}")
    curl = subprocess.run(["curl", "--version"], capture_output=True, text=True).stdout.split("\n")[
        0
    ]
    loops = ", ".join(f"{n}: {s.event_loop()}" for n, s in servers.items())
    return [
        f"machine: {os.cpu_count()} CPUs ({usable} usable) {model}; {platform.system()} {platform.release()}; "
        f"{psutil.virtual_memory().total / 2**30:.1f} GiB RAM",
        f"python {platform.python_version()} ({platform.python_implementation()}); {'; '.join(versions)}; "
        f"{' '.join(curl.split()[:2])}",
        f"event loops: {loops}; load generator: {client_loop}; "
        f"served files: {work} ({filesystem_of(work)})",
    ]


# -- main ----------------------------------------------------------------------------------------
def _write_file(path: Path, size: int, block: bytes) -> None:
    with open(path, "wb") as out:
        written = 0
        while written < size:
            chunk = block[: size - written]
            out.write(chunk)
            written += len(chunk)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="gateway vs aioftp vs pyftpdlib on loopback")
    parser.add_argument(
        "--size-mib", type=int, default=256, help="single-stream file size (default 256)"
    )
    parser.add_argument("--clients", type=int, default=200, help="concurrent clients (default 200)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default 3)")
    parser.add_argument(
        "--only",
        default=",".join(ALL_SERVERS),
        help="comma-separated subset of gateway,aioftp,pyftpdlib",
    )
    parser.add_argument("--markdown", metavar="FILE", help="also write the report as markdown")
    parser.add_argument("--json", metavar="FILE", help="also write every raw measurement as JSON")
    parser.add_argument(
        "--aioftp-loop",
        choices=("uvloop", "asyncio"),
        default="uvloop",
        help="event loop for the aioftp server (default uvloop)",
    )
    parser.add_argument(
        "--client-timeout",
        type=float,
        default=30.0,
        help="seconds a load client may take for its setup (transfers get twice that)",
    )
    parser.add_argument(
        "--workdir", help="where the servers' directories go (default: a new tmp dir)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs, files)")
    args = parser.parse_args(argv)
    names = [n.strip() for n in args.only.split(",") if n.strip()]
    unknown = set(names) - set(ALL_SERVERS)
    if unknown or not names:
        parser.error(f"--only takes names from {','.join(ALL_SERVERS)}")
    args.names = [n for n in ALL_SERVERS if n in names]
    return args


async def run(args: argparse.Namespace, client_loop: str) -> int:
    work = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="ftpbench-"))
    work.mkdir(parents=True, exist_ok=True)
    log_dir = work / "logs"
    log_dir.mkdir(exist_ok=True)
    t_start = time.perf_counter()
    print(f"work dir: {work}", flush=True)
    if filesystem_of(work).startswith(("tmpfs", "ramfs")):
        print("warning: the work dir is in memory, not on disk; use --workdir on a disk", flush=True)

    block = os.urandom(4 * MIB)
    payload = block[:SMALL_FILE]
    source = work / "source.bin"
    _write_file(source, args.size_mib * MIB, block)
    servers: dict[str, ServerProcess] = {}
    for name in args.names:
        root = work / name
        root.mkdir(exist_ok=True)
        shutil.copyfile(source, root / BIG_NAME)  # RETR works even if STOR failed
        for i in range(args.clients):
            (root / f"r{i:03d}.bin").write_bytes(payload)
        servers[name] = ServerProcess(name, root, log_dir, args.aioftp_loop)
    os.sync()

    sampler = RssSampler(servers)
    results: dict[str, dict[str, list[Outcome]]] = {
        key: {n: [] for n in args.names} for key, _, _ in METRICS
    }
    idle: dict[str, Outcome] = {}
    fresh: dict[str, Outcome] = {}
    bench = Bench(args, servers, source, payload, sampler)
    try:
        for server in servers.values():
            try:
                server.ensure_running()
            except Exception as exc:
                print(f"{server.name}: cannot start: {exc}", flush=True)
        sampler.start()
        machine = machine_info(servers, client_loop, work)
        print("\n".join(machine), flush=True)
        order = list(args.names)
        for rnd in range(args.rounds):
            rotated = order[rnd % len(order) :] + order[: rnd % len(order)]
            for key, _label, unit in METRICS:
                for name in rotated:
                    outcome = await bench.measure(key, servers[name], rnd + 1)
                    results[key][name].append(outcome)
                    shown = (
                        _fmt(outcome.value)
                        if outcome.value is not None
                        else f"fail ({outcome.reason})"
                    )
                    if outcome.failures:
                        shown += f" [{outcome.failures} failed: {outcome.reason}]"
                    print(
                        f"round {rnd + 1}/{args.rounds}  {key:<11} {name:<9} {shown} {unit}"
                        f"  [{time.perf_counter() - t_start:.0f}s]",
                        flush=True,
                    )
                    await asyncio.sleep(0.2)
        for name in args.names:  # once per server, after the transfers
            sampler.reset_window(name)
            try:
                idle[name] = await bench.idle_sessions(servers[name], warmup=False)
            except Exception as exc:
                idle[name] = Outcome(reason=f"{type(exc).__name__}: {exc}"[:300])
            idle[name].extra["rss_peak_mib"] = round(sampler.window[name] / MIB, 1)
            print(
                f"idle sessions  {name:<9} {_fmt(idle[name].value)} KiB/session {idle[name].extra}",
                flush=True,
            )
        await asyncio.sleep(0.2)
        sampler.stop()
        peak = dict(sampler.peak)
        hwm = {n: s.vm_hwm() for n, s in servers.items()}
        for name in args.names:  # a fresh process of each, outside the peak-RSS accounting
            fresh_root = work / f"{name}-fresh"
            fresh_root.mkdir(exist_ok=True)
            proc = ServerProcess(name, fresh_root, log_dir, args.aioftp_loop)
            proc.log_path = log_dir / f"{name}-fresh.log"
            try:
                proc.start()
                fresh[name] = await bench.idle_sessions(proc, warmup=True)
            except Exception as exc:
                fresh[name] = Outcome(reason=f"{type(exc).__name__}: {exc}"[:160])
            finally:
                proc.stop()
            print(
                f"idle sessions  {name:<9} {_fmt(fresh[name].value)} KiB/session (fresh) "
                f"{fresh[name].extra}",
                flush=True,
            )
    finally:
        if sampler.is_alive():
            sampler.stop()
        for server in servers.values():
            server.stop()

    notes = list(bench.notes) + bench.hwm_events
    for name in args.names:  # which measurement drove each server's sampled peak
        where = [
            (o.extra.get("rss_peak_mib", 0), key, i + 1)
            for key, _, _ in METRICS
            for i, o in enumerate(results[key][name])
        ]
        if name in idle:
            where.append((idle[name].extra.get("rss_peak_mib", 0), "idle_sessions", 0))
        if where and max(where)[0] > 0:
            top, key, rnd = max(where)
            notes.append(
                f"{name} sampled peak RSS {top} MiB during {key}"
                + (f" (round {rnd})" if rnd else "")
            )
    for name in args.names:
        notes += _log_summary(name, log_dir)
    rows, footnotes = build_report(args.names, results, idle, fresh, peak, hwm, args, bench.cpu)
    elapsed = time.perf_counter() - t_start
    summary = [
        f"rounds: {args.rounds} (median shown), interleaved; total time {elapsed:.0f}s; "
        f"ratios: higher is better, except memory rows where lower is better"
    ]
    text = render_text(rows)
    print()
    print("\n".join(machine + summary))
    print(text)
    for line in footnotes + notes:
        print(f"  * {line}")
    write_files(
        args,
        machine + summary,
        rows,
        footnotes + notes,
        results,
        idle,
        fresh,
        peak,
        hwm,
        bench.cpu,
        elapsed,
    )
    if args.keep or args.workdir:
        print(f"kept {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    client_loop = "asyncio"
    try:
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
        client_loop = "uvloop"
    except ImportError:
        pass
    return asyncio.run(run(args, client_loop))


if __name__ == "__main__":
    sys.exit(main())
