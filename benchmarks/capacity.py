"""All four capacity benchmarks in one go, their tables in one markdown file.

    python benchmarks/capacity.py --out benchmarks/results/$(date +%F)-capacity.md
    python benchmarks/capacity.py --quick --out /tmp/capacity.md

Runs, one after the other (each is runnable alone, see its own --help):
``idle_sessions.py``, ``concurrent_transfers.py``, ``cluster_logins.py`` and
``scale_out.py``.  ``--quick`` passes ``--quick`` to each (a smoke run of about a
minute in all); without it the full runs take about 15 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

RUNS = (
    ("idle_sessions.py", ["--sessions", "10000", "--rounds", "2", "--probe-max", "-1",
                          "--limit-demo", "--profile", "2000"]),
    ("concurrent_transfers.py", ["--clients", "1000", "--rounds", "2", "--aioftp"]),
    ("cluster_logins.py", ["--rounds", "2", "--production-hash"]),
    ("scale_out.py", ["--rounds", "2"]),
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    parts = []
    failed = []
    with tempfile.TemporaryDirectory() as scratch:
        for script, full in RUNS:
            markdown = Path(scratch) / (script + ".md")
            argv = [sys.executable, str(HERE / script), *(["--quick"] if args.quick else full),
                    "--markdown", str(markdown)]
            print(f"== {' '.join(argv[1:])}", flush=True)
            started = time.monotonic()
            done = subprocess.run(argv)
            print(f"== {script}: exit {done.returncode} after {time.monotonic() - started:.0f} s", flush=True)
            if done.returncode != 0 or not markdown.exists():
                failed.append(script)
                continue
            parts.append(markdown.read_text())
    header = ("# Capacity figures\n\nFrom `python benchmarks/capacity.py"
              + (" --quick" if args.quick else "") + "`; each section names its own command.\n\n")
    Path(args.out).write_text(header + "\n".join(parts))
    if failed:
        print("failed: " + ", ".join(failed), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
