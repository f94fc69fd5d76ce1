#!/usr/bin/env python3
"""Summarises repeated runs of tools/mpi/bench.sh into one markdown table: for each size and each
configuration (shared memory or TCP over veth, with or without extra mpirun flags), the median
over runs of each run's median time per all-reduce, the range of those medians (with more than
one run), and the bus
bandwidth 2 (N - 1) / N * B / t at the median (N = 2: B / t). Standard library only.

    for i in 1 2 3 4; do
      tools/mpi/bench.sh both --seconds 2
      MPIRUN_ARGS="--mca mpi_yield_when_idle 1" tools/mpi/bench.sh both --seconds 2
      sleep 400
    done > bench.log 2>&1
    tools/mpi/bench_summary.py bench.log
"""
import re
import statistics
import sys

HEADER = re.compile(r"^== (shared memory|TCP over veth): (.*) \((\S+), \d+ cores, load ([\d.]+)")
ROW = re.compile(r"^\s+(\d+)\s+[\d.]+\s+\d+\s+([\d.]+)\s+([\d.]+)\s")


def configuration(path, command):
    """'shm' or 'veth', plus the mpirun flags beyond the ones bench.sh always passes."""
    flags = re.findall(r"--mca \S+ \S+", command)
    return ("shm" if path == "shared memory" else "veth") + "".join(" " + f for f in flags)


def parse(lines):
    runs, loads, dates, current = {}, {}, [], None
    for line in lines:
        header = HEADER.match(line)
        if header:
            current = configuration(header.group(1), header.group(2))
            loads.setdefault(current, []).append(float(header.group(4)))
            dates.append(header.group(3))
            continue
        row = ROW.match(line)
        if row and current:
            runs.setdefault(current, {}).setdefault(int(row.group(1)), []).append(float(row.group(3)))
    return runs, loads, dates


def main():
    runs, loads, dates = parse(open(sys.argv[1]) if len(sys.argv) > 1 else sys.stdin)
    if not runs:
        raise SystemExit("bench_summary.py: no bench.sh output found")
    configs = sorted(runs, key=lambda c: (c.startswith("veth"), c))
    print(f"runs from {min(dates)} to {max(dates)}; " + "; ".join(
        f"{c}: {len(loads[c])} runs, load {min(loads[c]):g}-{max(loads[c]):g}" for c in configs) + "\n")
    ranged = " (range)" if any(len(loads[c]) > 1 for c in configs) else ""
    print("| floats | MB | " + " | ".join(f"{c}: ms{ranged} | busbw GB/s" for c in configs) + " |")
    print("|---:|---:|" + "---:|---:|" * len(configs))
    for size in sorted({s for c in configs for s in runs[c]}):
        cells = []
        for c in configs:
            medians = runs[c].get(size, [])
            if not medians:
                cells.append("- | -")
                continue
            median = statistics.median(medians)
            spread = f" ({min(medians):.3f}-{max(medians):.3f})" if len(medians) > 1 else ""
            cells.append(f"{median:.3f}{spread} | {4 * size / median / 1e6:.2f}")
        print(f"| {size:,} | {4 * size / 1e6:,.3f} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
