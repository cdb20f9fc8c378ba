"""Clocks for the benchmarks: wall and CPU time (this process plus its waited-for children),
repeated measurements, the machine's load, and peak memory of a process tree."""

from __future__ import annotations

import os
import statistics
import subprocess
import threading
import time
from dataclasses import dataclass, field

from pipeline.core.measure import cpu_seconds


def load() -> float:
    """The 1-minute load average: other work sharing the cores during a measurement."""
    return round(os.getloadavg()[0], 2)


@dataclass
class Timing:
    """Repeated measurements of one thing: wall and CPU seconds per run."""
    wall: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)

    def add(self, wall: float, cpu: float) -> None:
        self.wall.append(wall)
        self.cpu.append(cpu)

    @property
    def best(self) -> float:
        return min(self.wall)

    @property
    def median(self) -> float:
        return statistics.median(self.wall)

    @property
    def best_cpu(self) -> float:
        return min(self.cpu)

    def summary(self, units: float, unit: str) -> dict:
        """Rates per wall second (best and median run) and CPU seconds per unit."""
        return {f"{unit}": units, "runs": len(self.wall),
                "wall_seconds": [round(w, 4) for w in self.wall], "cpu_seconds": [round(c, 4) for c in self.cpu],
                f"{unit}_per_second_best": round(units / self.best, 2),
                f"{unit}_per_second_median": round(units / self.median, 2),
                f"cpu_ms_per_{unit.rstrip('s')}": round(1000 * self.best_cpu / units, 3)}


class Stopwatch:
    """`with Stopwatch(timing):` adds one measurement to a Timing."""

    def __init__(self, timing: Timing):
        self.timing = timing

    def __enter__(self):
        self.cpu, self.start = cpu_seconds(), time.perf_counter()
        return self

    def __exit__(self, *exc):
        if exc[0] is None:
            self.timing.add(time.perf_counter() - self.start, cpu_seconds() - self.cpu)


def tool_version(*command: str) -> str:
    try:
        out = subprocess.run(command, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return "missing"
    text = (out.stdout or out.stderr).strip().splitlines()
    return " ".join(text[0].split()) if text else "unknown"


# --- peak memory of a process tree -------------------------------------------------------
ROLLUP_KEYS = {"Rss": "rss", "Pss": "pss", "Pss_Anon": "anon", "Pss_File": "file"}


def _memory(proc) -> dict:
    """kB of one process: Rss, and its proportional share (Pss) split into anonymous and file-backed."""
    try:
        with open(f"/proc/{proc.pid}/smaps_rollup") as fh:
            values = {ROLLUP_KEYS[k]: int(v.split()[0]) for k, v in
                      (line.split(":", 1) for line in fh if ":" in line) if k in ROLLUP_KEYS}
        if "rss" in values:
            return values
    except (OSError, ValueError):
        pass
    rss = proc.memory_info().rss // 1024  # no smaps_rollup (not Linux): RSS only
    return {"rss": rss, "pss": rss, "anon": rss, "file": 0}


def _role(proc) -> str:
    try:
        cmd = proc.cmdline()
    except Exception:  # a process that just ended
        return "other"
    text = " ".join(cmd)
    if "multiprocessing" in text:
        return "resource_tracker" if "resource_tracker" in text else "worker"
    return os.path.basename(cmd[0]) if cmd else "other"


def run_with_peak_rss(command: list[str], env: dict | None = None, cwd: str | None = None,
                      interval: float = 0.05, timeout: float = 1800) -> dict:
    """Run a command; sample the memory of it and all its descendants; return the peaks (MiB).

    - `peak_tree_rss_mib`: the largest sum of RSS over the tree at one instant (shared pages,
      such as the Python libraries every worker maps, are counted once per process);
    - `peak_tree_pss_mib`: the same with shared pages divided among their users (what the
      tree really occupies), split into `peak_tree_anon_mib` (heap: must stay in RAM) and
      file-backed pages (code, memory-mapped inputs and outputs: page cache the kernel can drop);
    - `peak_process_rss_mib` / `peak_process_anon_mib`: the largest RSS / heap of one process
      of each kind (parent, worker, sox): atomic per process, unlike the sums.
    """
    import psutil

    started = time.perf_counter()
    proc = subprocess.Popen(command, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    root = psutil.Process(proc.pid)
    peaks = {"rss": 0, "pss": 0, "anon": 0, "file": 0}
    roles: dict[str, dict[str, int]] = {}
    role_of: dict[int, str] = {}
    output: list[str] = []
    reader = threading.Thread(target=lambda: output.extend(proc.stdout), daemon=True)
    reader.start()
    while proc.poll() is None:
        if time.perf_counter() - started > timeout:
            proc.kill()
            break
        totals = dict.fromkeys(peaks, 0)
        for p in [root, *_children(root)]:
            try:
                if p.pid != root.pid and p.ppid() != root.pid and _role(p) in ("worker", "python", "python3"):
                    continue  # a worker's fork that has not exec'd sox yet: its pages are the worker's
                mem = _memory(p)
                role = role_of.setdefault(p.pid, "parent" if p.pid == root.pid else _role(p))
            except (psutil.NoSuchProcess, psutil.AccessDenied, ProcessLookupError):
                continue
            for key in totals:
                totals[key] += mem.get(key, 0)
            best = roles.setdefault(role, {"rss": 0, "anon": 0})
            best["rss"], best["anon"] = max(best["rss"], mem["rss"]), max(best["anon"], mem.get("anon", 0))
        for key in peaks:
            peaks[key] = max(peaks[key], totals[key])
        time.sleep(interval)
    proc.wait()
    reader.join(timeout=5)
    mib = lambda kb: round(kb / 1024, 1)  # noqa: E731
    return {"returncode": proc.returncode, "seconds": round(time.perf_counter() - started, 2),
            "peak_tree_rss_mib": mib(peaks["rss"]), "peak_tree_pss_mib": mib(peaks["pss"]),
            "peak_tree_anon_mib": mib(peaks["anon"]), "peak_tree_file_mib": mib(peaks["file"]),
            "peak_process_rss_mib": {k: mib(v["rss"]) for k, v in sorted(roles.items())},
            "peak_process_anon_mib": {k: mib(v["anon"]) for k, v in sorted(roles.items())},
            "processes_seen": len(role_of), "output_tail": "".join(output)[-2000:]}


def _children(proc):
    import psutil

    try:
        return proc.children(recursive=True)
    except psutil.NoSuchProcess:
        return []
