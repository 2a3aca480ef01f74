"""What the benchmarks read of a process: its memory, and a fresh run."""

import json
import subprocess
import sys
from pathlib import Path


def resident_mib():
    """Resident memory of this process, in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise OSError("VmRSS not found in /proc/self/status")


def run_fresh(script, *args):
    """The JSON the last output line of `python script *args` holds.

    The script runs in a fresh process, so that what it measures starts
    from nothing another measurement left behind.
    """
    output = subprocess.run(
        [sys.executable, str(script), *map(str, args)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return json.loads(output.strip().splitlines()[-1])
