#!/usr/bin/env python3
"""chatload benchmark suite (issue 7): chatload against the practical limit and a peer.

One invocation runs everything side by side and prints one markdown table:

  a. closed-loop ping-pong (`PING x` -> `PONG x`) at 10, 100 and 1 000 connections for
     chatload, the minimal hand-written tokio client (examples/pingpong_minimal.rs) and
     Locust with a raw-TCP user (bench/locustfile.py): round trips/s, p50/p99, round
     trips per generator CPU-second and the generator's user-space µs per round trip, with
     the kernel's floor beside them (bare io_uring:
     bench/pingpong_uring.rs, no runtime); then at 100 connections over TLS and over WebSocket
     (chatload and the minimal client's --tls / --ws modes);
  b. connection scale: 10 000, 25 000 and 50 000 chatload vusers, one message each per 5 s:
     generator RSS per vuser and CPU %;
  c. open-model accuracy at 500, 2 000 and 5 000 arrivals/s: achieved vs target and
     `schedule.lag` p99.

The generator is pinned to core 0 and `chatload serve` to core 1 (taskset); every process is
bounded in time and killed by this script if it overruns; only loopback addresses are used.
Not part of `cargo test` or CI. Usage (see docs/performance.md):

  python3 bench/suite.py            # everything, about 6-7 minutes (section a 3 times)
  python3 bench/suite.py --quick    # a subset, about 2 minutes
  python3 bench/suite.py --only a --repeat 1 --connections 1000   # one quick look
  python3 bench/suite.py --only a   # one section (a, b or c; repeatable)
"""

import argparse
import atexit
import os
import platform
import resource
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

# The sections and the process handling live in sibling modules (suite_sections.py,
# suite_procs.py); find them however this script is invoked. bench/.gitignore ignores the
# __pycache__ this leaves beside them.
HERE = str(Path(__file__).resolve().parent)
if HERE not in sys.path:
    sys.path.insert(0, HERE)

from suite_procs import LOCUST, PAGE, ROOT, URING_OK, VENV, cleanup, on_signal  # noqa: E402
from suite_sections import bench_open, bench_pingpong_repeated, bench_scale  # noqa: E402


# ---------------------------------------------------------------- output


def fmt_ms(v):
    if v is None or v == "":
        return ""
    return f"{v:.3f}" if v < 10 else f"{v:.1f}"


def table(rows):
    head = (
        "| test | generator | load | achieved | p50 ms | p99 ms | gen CPU % "
        "| RT per gen CPU-s | user µs per RT | spread max/min | RSS per vuser "
        "| schedule.lag p99 ms | notes |"
    )
    lines = [head, "|" + "---|" * 13]
    for r in rows:
        per_cpu, cpu, spread = r.get("per_cpu"), r.get("cpu"), r.get("spread")
        achieved = r.get("achieved", "")
        if r.get("rt_per_s") is not None:
            achieved = f"{r['rt_per_s']:,.0f} RT/s"
        lines.append(
            "| "
            + " | ".join(
                [
                    r["test"],
                    r["generator"],
                    r["load"],
                    achieved,
                    fmt_ms(r.get("p50")),
                    fmt_ms(r.get("p99")),
                    f"{cpu:.0f}" if isinstance(cpu, (int, float)) else (cpu or ""),
                    f"{per_cpu:,.0f}" if per_cpu else "",
                    f"{r['user_us']:.2f}" if r.get("user_us") else "",
                    f"{spread:.2f}" if spread else "",
                    r.get("rss", ""),
                    fmt_ms(r.get("lag")),
                    r.get("note", ""),
                ]
            )
            + " |"
        )
    return "\n".join(lines)


def machine():
    model = "unknown"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    rustc = subprocess.run(["rustc", "--version"], capture_output=True, text=True).stdout.strip()
    mem = os.sysconf("SC_PHYS_PAGES") * PAGE / 2**30
    return (
        f"nproc {os.cpu_count()}, CPU {model}, {mem:.0f} GiB RAM, "
        f"kernel {platform.release()}, {rustc}"
    )


def ensure_locust():
    """Installs Locust into bench/.venv (not committed) once; returns (ok, reason)."""
    if LOCUST.exists():
        return True, ""
    print("installing Locust into bench/.venv (pip) ...", flush=True)
    try:
        subprocess.run([sys.executable, "-m", "venv", VENV], check=True, capture_output=True)
        r = subprocess.run(
            [VENV / "bin" / "pip", "install", "-q", "locust>=2.20,<3"],
            capture_output=True,
            text=True,
            timeout=300,
        )
    except (subprocess.SubprocessError, OSError) as e:
        return False, f"Locust could not be installed ({e})"
    if r.returncode != 0 or not LOCUST.exists():
        last = (r.stderr.strip().splitlines() or ["no output"])[-1]
        return False, f"pip install locust failed: {last}"
    return True, ""


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="a ~2 minute subset")
    ap.add_argument("--only", action="append", choices=["a", "b", "c"], help="run only this section")
    ap.add_argument("--no-build", action="store_true", help="use the existing release binaries")
    ap.add_argument("--no-locust", action="store_true", help="skip Locust (rows show n/a)")
    ap.add_argument(
        "--no-tls-ws", action="store_true", help="skip section a's TLS and WebSocket rows"
    )
    ap.add_argument(
        "--connections", type=int, action="append", metavar="N",
        help="section a's plain-TCP connection counts instead of 10, 100, 1000 (repeatable)",
    )
    ap.add_argument(
        "--repeat", type=int, default=3, metavar="N",
        help="run section a N times and print each figure's median (default 3)",
    )
    args = ap.parse_args()
    sections = set(args.only or ["a", "b", "c"])

    atexit.register(cleanup)
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    if not shutil.which("taskset"):
        sys.exit("taskset is required (util-linux) to pin the generator and the server")
    # 50 000 connections need 50 000 descriptors in the generator and as many in the server
    want = 200_000
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, max(hard, want)))
    except (ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[0]

    if not args.no_build:
        print("building release binaries ...", flush=True)
        subprocess.run(
            ["cargo", "build", "--release", "--quiet", "--bin", "chatload", "--example", "pingpong_minimal"]
            + (["--example", "pingpong-uring"] if URING_OK else []),
            cwd=ROOT,
            check=True,
        )
    locust_ok, locust_why = (False, "skipped (--no-locust)")
    if "a" in sections and not args.no_locust:
        locust_ok, locust_why = ensure_locust()
        if not locust_ok:
            print(f"Locust rows will be n/a: {locust_why}", flush=True)

    work = ROOT / "target" / "bench" / time.strftime("%Y%m%dT%H%M%S")
    work.mkdir(parents=True, exist_ok=True)
    began = time.monotonic()
    if args.quick:
        conns, pp_s = [10, 1000], 4
        scale, ramp_s, hold_s = [10_000], 3, 8
        rates, open_s = [2000], 4
    else:
        conns, pp_s = [10, 100, 1000], 8
        scale, ramp_s, hold_s = [10_000, 25_000, 50_000], 5, 12
        rates, open_s = [500, 2000, 5000], 5
    flavours = [] if args.no_tls_ws else [(100, "tls"), (100, "ws")]
    if args.connections:
        conns = args.connections
    print(f"machine: {machine()}; RLIMIT_NOFILE {nofile}; work dir {work}", flush=True)

    rows = []
    if "a" in sections:
        print(f"a. ping-pong {conns} connections, then {flavours}, {pp_s} s each ...", flush=True)
        repeat = max(1, args.repeat)
        rows += bench_pingpong_repeated(
            work, conns, pp_s, locust_ok, locust_why, flavours, repeat
        )
    if "b" in sections:
        print(f"b. connection scale {scale} vusers ...", flush=True)
        rows += bench_scale(work, scale, ramp_s, hold_s, nofile)
    if "c" in sections:
        print(f"c. open model {rates} arrivals/s, {open_s} s each ...", flush=True)
        rows += bench_open(work, rates, open_s)

    text = table(rows)
    (work / "table.md").write_text(text + "\n")
    print()
    print(text)
    print()
    print(f"suite took {time.monotonic() - began:.0f} s; logs, plans and results in {work}")


if __name__ == "__main__":
    main()
