#!/usr/bin/env bash
# Smoke test of `medobs exporter gpu` against real NVML, for a machine with an NVIDIA GPU.
#
#   bash bench/gpu_smoke.sh            (from the repository root)
#
# In one go it:
#   1. starts the exporter (real pynvml, --dcgm-compatible) on 127.0.0.1:$PORT (default 19400)
#      and waits for medobs_gpu_up 1;
#   2. runs `promtool check metrics` on its exposition: nothing may be printed about the
#      medobs_gpu_* names; dcgm-exporter's own DCGM_* names draw only their known complaints
#      (camelCase `modelName`, "counter" in DCGM_FI_DEV_PCIE_REPLAY_COUNTER);
#   3. compares, per GPU UUID, with `nvidia-smi --query-gpu`: utilisation within 10 percentage
#      points (both sample a moving value over different windows), memory used within 64 MiB,
#      temperature within 2 degrees C (medobs_* and DCGM_* names both);
#   4. times the scrape (median of 20 HTTP scrapes) against one
#      `nvidia-smi --query-gpu=... --format=csv` run (median of 5): target scrape <= 1/10 of it;
#      and reports the exporter's own collection time and RSS.
# Exit 0 only if every check passes. Everything it saw goes to $OUT (default: a new temp dir):
# metrics.txt, nvidia-smi.csv, exporter.log, report.txt.
#
# Needs: nvidia-smi; promtool on PATH or in $PROMTOOL; a Python with the package installed
# ($PYTHON, else .venv/bin/python, else it makes $TMPDIR/medobs-gpu-smoke-venv with `pip install .`;
# offline, point pip at wheels: PIP_NO_INDEX=1 PIP_FIND_LINKS=DIR).
set -euo pipefail

cd "$(dirname "$0")/.."
PORT=${PORT:-19400}
OUT=${OUT:-$(mktemp -d -t medobs-gpu-smoke.XXXXXX)}
mkdir -p "$OUT"

fail() { echo "gpu_smoke: $*" >&2; exit 1; }

command -v nvidia-smi >/dev/null || fail "nvidia-smi not found: run this on a machine with an NVIDIA GPU and driver"
nvidia-smi -L >/dev/null || fail "nvidia-smi -L failed: is the NVIDIA driver loaded?"
PROMTOOL=${PROMTOOL:-$(command -v promtool || true)}
[ -x "$PROMTOOL" ] || fail "promtool not found: install prometheus (apt-get install prometheus) or set PROMTOOL"

imports="import exporters.gpu.collector, pynvml, h2, requests"
if [ -n "${PYTHON:-}" ]; then
    PY=$PYTHON
elif [ -x .venv/bin/python ] && .venv/bin/python -c "$imports" 2>/dev/null; then
    PY=.venv/bin/python
else
    VENV=${TMPDIR:-/tmp}/medobs-gpu-smoke-venv
    PY=$VENV/bin/python
    if ! [ -x "$PY" ] || ! "$PY" -c "$imports" 2>/dev/null; then
        echo "gpu_smoke: installing the package into $VENV"
        python3 -m venv "$VENV"
        "$PY" -m pip install --quiet .
    fi
fi
"$PY" -c "$imports" || fail "$PY cannot import the exporter and its dependencies"

"$PY" -m medobs.cli exporter gpu --listen "127.0.0.1:$PORT" --dcgm-compatible --pcie-interval 5 \
    --hostname smoke-node >"$OUT/exporter.log" 2>&1 &
EXPORTER=$!
trap 'kill "$EXPORTER" 2>/dev/null; wait "$EXPORTER" 2>/dev/null || true' EXIT

export PORT OUT PROMTOOL EXPORTER
status=0
"$PY" - <<'PYTHON' || status=$?
import os
import re
import statistics
import subprocess
import sys
import time

import psutil
import requests

PORT, OUT, PROMTOOL, EXPORTER = os.environ["PORT"], os.environ["OUT"], os.environ["PROMTOOL"], int(os.environ["EXPORTER"])
URL = f"http://127.0.0.1:{PORT}/metrics"
QUERY = "index,uuid,utilization.gpu,memory.used,temperature.gpu"
TOLERANCE = {"utilization": 10.0, "memory_mib": 64.0, "temperature": 2.0}
report, failures = [], []


def say(line=""):
    print(line)
    report.append(line)


def check(ok, line):
    say(("PASS " if ok else "FAIL ") + line)
    if not ok:
        failures.append(line)


def scrape():
    return requests.get(URL, timeout=10).text


def samples(text):
    """name -> list of (labels dict, value)."""
    found = {}
    for line in text.splitlines():
        match = re.match(r'^([A-Za-z_:][\w:]*)(?:\{(.*)\})? (\S+)$', line)
        if match:
            labels = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', match.group(2) or ""))
            found.setdefault(match.group(1), []).append((labels, float(match.group(3))))
    return found


def nvidia_smi():
    result = subprocess.run(
        ["nvidia-smi", f"--query-gpu={QUERY}", "--format=csv,noheader,nounits"],
        capture_output=True, text=True, check=True,
    )
    return result.stdout


# 1. up -----------------------------------------------------------------------------------------
deadline, text = time.monotonic() + 60, ""
while time.monotonic() < deadline:
    try:
        text = scrape()
        if "medobs_gpu_up 1.0" in text:
            break
    except requests.ConnectionError:
        pass
    time.sleep(1)
check("medobs_gpu_up 1.0" in text, "the exporter serves with medobs_gpu_up 1")
if "medobs_gpu_up 1.0" not in text:
    say(open(f"{OUT}/exporter.log").read())
    say(text)
    open(f"{OUT}/report.txt", "w").write("\n".join(report) + "\n")
    sys.exit(1)
time.sleep(1)  # the first PCIe sample (taken as NVML comes up) is in
text = scrape()
open(f"{OUT}/metrics.txt", "w").write(text)

# 2. promtool -------------------------------------------------------------------------------------
own = "\n".join(line for line in text.splitlines() if "DCGM_" not in line) + "\n"
lint = subprocess.run([PROMTOOL, "check", "metrics"], input=own, capture_output=True, text=True)
complaints = (lint.stdout + lint.stderr).strip()
check(not complaints, "promtool check metrics prints nothing about medobs_gpu_*" + (f": {complaints}" if complaints else ""))
lint = subprocess.run([PROMTOOL, "check", "metrics"], input=text, capture_output=True, text=True)
unexpected = [line for line in (lint.stdout + lint.stderr).splitlines()
              if not re.match(r"^DCGM_\w+ (label names should be written in 'snake_case' not 'camelCase'"
                              r"|metric name should not include type 'counter')$", line)]
check(not unexpected, "promtool on the whole exposition: only dcgm-exporter's known complaints"
      + (f", not {unexpected}" if unexpected else ""))

# 3. values against nvidia-smi --------------------------------------------------------------------
found = samples(text)
csv = nvidia_smi()
open(f"{OUT}/nvidia-smi.csv", "w").write(csv)
by_uuid = lambda name: {labels.get("uuid", labels.get("UUID")): value for labels, value in found.get(name, [])}
utilization, memory, temperature = (by_uuid("medobs_gpu_utilization_ratio"), by_uuid("medobs_gpu_memory_used_bytes"),
                                    by_uuid("medobs_gpu_temperature_celsius"))
dcgm_util, dcgm_memory, dcgm_temperature = (by_uuid("DCGM_FI_DEV_GPU_UTIL"), by_uuid("DCGM_FI_DEV_FB_USED"),
                                            by_uuid("DCGM_FI_DEV_GPU_TEMP"))
for row in csv.strip().splitlines():
    index, uuid, smi_util, smi_memory, smi_temperature = [cell.strip() for cell in row.split(",")]
    say(f"GPU {index} {uuid}: nvidia-smi util {smi_util} %, memory used {smi_memory} MiB, {smi_temperature} C")
    pairs = [
        ("utilization", utilization.get(uuid, float("nan")) * 100, smi_util, "utilization"),
        ("memory used MiB", memory.get(uuid, float("nan")) / 2**20, smi_memory, "memory_mib"),
        ("temperature", temperature.get(uuid, float("nan")), smi_temperature, "temperature"),
        ("DCGM_FI_DEV_GPU_UTIL", dcgm_util.get(uuid, float("nan")), smi_util, "utilization"),
        ("DCGM_FI_DEV_FB_USED", dcgm_memory.get(uuid, float("nan")), smi_memory, "memory_mib"),
        ("DCGM_FI_DEV_GPU_TEMP", dcgm_temperature.get(uuid, float("nan")), smi_temperature, "temperature"),
    ]
    for what, ours, theirs, tolerance in pairs:
        if theirs in ("[N/A]", "[Not Supported]"):
            say(f"     {what}: nvidia-smi has none ({theirs}); exporter {ours}")
            continue
        difference = abs(ours - float(theirs))
        check(difference <= TOLERANCE[tolerance],
              f"GPU {index} {what}: exporter {ours:.1f}, nvidia-smi {theirs} (|diff| {difference:.1f} <= {TOLERANCE[tolerance]:g})")

# 4. timing -------------------------------------------------------------------------------------
with requests.Session() as session:
    session.get(URL, timeout=10)
    scrape_times = []
    for _ in range(20):
        started = time.perf_counter()
        session.get(URL, timeout=10)
        scrape_times.append(time.perf_counter() - started)
smi_times = []
for _ in range(5):
    started = time.perf_counter()
    nvidia_smi()
    smi_times.append(time.perf_counter() - started)
collection = [value for _, value in samples(scrape()).get("medobs_gpu_scrape_duration_seconds", [])]
scrape_ms, smi_ms = statistics.median(scrape_times) * 1000, statistics.median(smi_times) * 1000
say(f"scrape (HTTP, median of 20): {scrape_ms:.2f} ms; exporter's own collection: {collection[0] * 1000:.2f} ms")
say(f"nvidia-smi --query-gpu={QUERY} --format=csv (median of 5): {smi_ms:.1f} ms")
check(scrape_ms <= smi_ms / 10, f"scrape / nvidia-smi = {scrape_ms / smi_ms:.3f} (target <= 0.1)")
say(f"exporter RSS: {psutil.Process(EXPORTER).memory_info().rss / 1e6:.1f} MB; "
    f"GPUs: {len(found.get('medobs_gpu_info', []))}; "
    f"series: {sum(len(values) for values in found.values())}")
xid_off = [line for line in open(f"{OUT}/exporter.log") if "XID errors will not be counted" in line]
say("XID events: " + ("registered on every GPU" if not xid_off else "; ".join(line.strip() for line in xid_off)))

say()
say("gpu_smoke: " + ("every check passed" if not failures else f"{len(failures)} check(s) failed"))
open(f"{OUT}/report.txt", "w").write("\n".join(report) + "\n")
sys.exit(1 if failures else 0)
PYTHON
echo "gpu_smoke: artefacts in $OUT"
exit $status
