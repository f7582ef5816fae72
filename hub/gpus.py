"""Does this machine have a GPU?  The local spawner asks before it promises one on a card.

The embedded platform runs sessions as local processes, so a "GPU" environment on a laptop
without one would start silently on the CPU.  :func:`count_local_gpus` answers from what
the NVIDIA driver exposes — ``nvidia-smi -L`` where the tool is installed (it also sees GPUs
in use by others), else the ``/dev/nvidia<N>`` device files the driver creates — and never
imports cupy: that would load CUDA into the hub process for a yes/no question, and cupy
itself finds no GPU where neither of these exists.  On Kubernetes the question does not
arise: GPU pods are placed on GPU nodes.
"""

from __future__ import annotations

import functools
import re
import shutil
import subprocess
from pathlib import Path

__all__ = ["count_local_gpus", "device_file_count", "nvidia_smi_count"]

_DEVICE = re.compile(r"nvidia\d+")


def nvidia_smi_count(command: str = "nvidia-smi", timeout: float = 10.0) -> int | None:
    """GPUs listed by ``nvidia-smi -L`` (lines ``GPU 0: ...``); None where the tool is absent or fails."""
    path = shutil.which(command)
    if path is None:
        return None
    try:
        run = subprocess.run([path, "-L"], capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if run.returncode != 0:  # installed, but no driver loaded: says "couldn't communicate with the driver"
        return 0
    return sum(1 for line in run.stdout.splitlines() if line.startswith("GPU "))


def device_file_count(dev: str | Path = "/dev") -> int:
    """The ``nvidia0``, ``nvidia1``... device files in ``dev`` (not nvidiactl, nvidia-uvm)."""
    try:
        return sum(1 for entry in Path(dev).iterdir() if _DEVICE.fullmatch(entry.name))
    except OSError:
        return 0


@functools.lru_cache(maxsize=4)
def count_local_gpus(command: str = "nvidia-smi", dev: str = "/dev") -> int:
    """GPUs a local session could use: nvidia-smi's count where it answers, else the device files.

    Cached per process: GPUs do not come and go while the hub runs, and the launch page
    renders on every visit.
    """
    listed = nvidia_smi_count(command)
    return listed if listed is not None else device_file_count(dev)
