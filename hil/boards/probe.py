"""What `orbitlite hil boards check` asks a board, as a script sent to the board's own `python3`
(its source on standard input) and answered in one JSON line: the machine, the Python and the C
library its wheels need, free disk
where the harness works and memory, the TFLite interpreter that imports, and whether an Edge TPU
is there (on USB: its ids before and after its firmware loads; on PCIe: the apex device).

It runs on the board, so it uses the standard library alone and the Python 3.7 of older boards."""

import importlib
import json
import os
import platform
import shutil
import sys

EDGETPU_USB = {("1a6e", "089a"), ("18d1", "9302")}  # Global Unichip (no firmware yet), Google (running)
EDGETPU_PCIE = "/dev/apex_0"


def _read(path):
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return None


def memory():
    """(available, total) bytes from /proc/meminfo, or None where there is none."""
    info = {}
    text = _read("/proc/meminfo") or ""
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if value.strip().endswith("kB"):
            info[key] = int(value.split()[0]) * 1024
    if "MemTotal" not in info:
        return None
    return info.get("MemAvailable", info.get("MemFree", 0)), info["MemTotal"]


def interpreter():
    """The first TFLite interpreter package that imports, with its version."""
    for module, package in (("ai_edge_litert", "ai-edge-litert"), ("tflite_runtime", "tflite-runtime")):
        try:
            importlib.import_module(module)
        except Exception:  # an import that fails in any way is an interpreter not there
            continue
        try:
            from importlib.metadata import version
            return {"module": module, "version": version(package)}
        except Exception:
            return {"module": module, "version": None}
    return None


def edgetpu():
    """Where an Edge TPU answers: `usb` (vendor:product), `pcie`, or None."""
    found = []
    root = "/sys/bus/usb/devices"
    for name in sorted(os.listdir(root)) if os.path.isdir(root) else []:
        ids = (_read(os.path.join(root, name, "idVendor")), _read(os.path.join(root, name, "idProduct")))
        if ids in EDGETPU_USB:
            found.append("usb " + ":".join(ids))
    if os.path.exists(EDGETPU_PCIE):
        found.append("pcie " + EDGETPU_PCIE)
    return found


def main():
    disk = shutil.disk_usage(".")
    mem = memory()
    print(json.dumps({
        "arch": platform.machine(),
        "python": platform.python_version(),
        "libc": list(platform.libc_ver()),
        "executable": sys.executable,
        "cwd": os.getcwd(),
        "disk_free": disk.free, "disk_total": disk.total,
        "mem_available": mem[0] if mem else None, "mem_total": mem[1] if mem else None,
        "cores": os.cpu_count(),
        "interpreter": interpreter(),
        "edgetpu": edgetpu(),
    }))


if __name__ == "__main__":
    main()
