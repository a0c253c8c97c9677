#!/usr/bin/env python3
"""Benchmark (issue 2): `ezmsi doctor --format json` on the example deployment against `docker version --format json`,
run alternately in one run against the same daemon. Prints the medians and their ratio; target ratio <= 1.5.

Usage: bench/doctor_vs_docker_version.py [--runs N] [--ezmsi PATH] [--json OUT]
Needs DOCKER_HOST pointing at a running daemon (scripts/lib/env.sh sets it) and a release build.
"""
import argparse, json, os, statistics, subprocess, sys, time

parser = argparse.ArgumentParser()
parser.add_argument("--runs", type=int, default=40)
parser.add_argument("--ezmsi", default=".build/release/ezmsi")
parser.add_argument("--json")
parser.add_argument("--target", type=float, default=1.5)
args = parser.parse_args()

doctor = [args.ezmsi, "doctor", "--format", "json", "--deployment", "example"]
docker = ["docker", "version", "--format", "json"]

def timed(cmd):
    start = time.perf_counter()
    done = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start, done.returncode

for cmd in (doctor, docker):  # warm caches, check both work (the doctor exits 1 when it finds problems)
    _, rc = timed(cmd)
    if rc not in (0, 1):
        sys.exit(f"benchmark setup: {' '.join(cmd)} exited {rc}")

a, b = [], []
for i in range(args.runs):
    # Alternate the order so drift affects both sides equally.
    first, second = (doctor, docker) if i % 2 == 0 else (docker, doctor)
    t1, _ = timed(first)
    t2, _ = timed(second)
    (a if first is doctor else b).append(t1)
    (b if first is doctor else a).append(t2)

result = {
    "runs": args.runs,
    "doctor_median_ms": round(statistics.median(a) * 1000, 2),
    "docker_version_median_ms": round(statistics.median(b) * 1000, 2),
}
result["ratio"] = round(result["doctor_median_ms"] / result["docker_version_median_ms"], 3)
result["target"] = args.target
result["met"] = result["ratio"] <= args.target
print(json.dumps(result))
if args.json:
    with open(args.json, "w") as f:
        json.dump(result, f)
