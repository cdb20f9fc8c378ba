"""What a measurement needs: the cores this process may use, CPU seconds, a wall-and-CPU clock,
and a description of the machine. The benchmarks, the experiments and the worker pools use these."""

from __future__ import annotations

import os
import platform
import resource
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass


def cores() -> int:
    """The cores this process may run on (what `data.workers = 0` uses)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def cpu_seconds() -> float:
    """User + system time of this process and of every child it has waited for (sox, workers)."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


@dataclass
class Clock:
    """Wall and CPU seconds of a block."""
    wall: float = 0.0
    cpu: float = 0.0

    def as_dict(self) -> dict:
        return {"wall_seconds": round(self.wall, 2), "cpu_seconds": round(self.cpu, 2)}


@contextmanager
def timed():
    """`with timed() as clock:` fills the clock when the block ends (also when it raises)."""
    clock = Clock()
    wall, cpu = time.perf_counter(), cpu_seconds()
    try:
        yield clock
    finally:
        clock.wall, clock.cpu = time.perf_counter() - wall, cpu_seconds() - cpu


def machine() -> dict:
    """What the numbers were measured on: CPU model, cores, memory, Python and platform."""
    model = next((line.split(":", 1)[1].strip() for line in _read("/proc/cpuinfo").splitlines()
                  if line.startswith("model name")), platform.processor() or platform.machine())
    mem = next((int(line.split()[1]) // 1024 for line in _read("/proc/meminfo").splitlines()
                if line.startswith("MemTotal")), None)
    return {"cores_used": cores(), "cpu_count": os.cpu_count(), "cpu": model, "memory_mib": mem,
            "python": sys.version.split()[0], "platform": platform.platform()}


def _read(path: str) -> str:
    try:
        with open(path) as fh:
            return fh.read()
    except OSError:
        return ""
