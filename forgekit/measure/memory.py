"""Memory as the kernel charges it: PSS per process, and the memory cgroup a process runs in.

A sum of RSS counts every shared page once per process that maps it: two TensorFlow processes
both "hold" libtensorflow's ~450 MiB of code, but the machine (and Binder's limit) pays for it
once. PSS (proportional set size, from ``/proc/PID/smaps_rollup``) splits each shared page
between the processes mapping it, so a tree's PSS adds up to what it really uses.

PSS has two parts that behave differently. Its anonymous part (``Pss_Anon``: heaps, tensors,
copy-on-write pages split between a fork and its parent) is what the tree allocated; it is the
same on any machine. Its file part is shared with *every* process mapping the same library
file, inside the tree or not (another notebook's kernel, a second venv hard-linked from one
cache), so it shrinks when the machine is busy, and the kernel can drop those clean pages under
pressure. Bounds use the anonymous part; reports show both. A memory cgroup's own counter is
what a container limit enforces (page cache included).

Linux only; elsewhere every reading is ``None``.
"""

from __future__ import annotations

import contextlib
import threading
from dataclasses import dataclass
from pathlib import Path

MIB = 2**20
_UNLIMITED = 1 << 60  # cgroup v1 spells "no limit" as a number near 2**63


def smaps_rollup(pid: int) -> dict[str, int] | None:
    """``/proc/PID/smaps_rollup`` in bytes (``{"Rss": ..., "Pss": ..., "Pss_Anon": ...}``), or
    None when the process exited or cannot be read."""
    found = {}
    try:
        with open(f"/proc/{pid}/smaps_rollup", encoding="ascii") as f:
            for line in f:
                key, _, rest = line.partition(":")
                if rest.strip().endswith("kB"):
                    found[key] = int(rest.split()[0]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return found or None


def pss_bytes(pid: int) -> int | None:
    """The proportional set size of ``pid``, or None when it exited or cannot be read."""
    return (smaps_rollup(pid) or {}).get("Pss")


@dataclass(frozen=True)
class Cgroup:
    """The memory cgroup a process belongs to (v2 unified or v1 ``memory`` controller)."""

    path: Path
    version: int

    def _read(self, v2: str, v1: str) -> int | None:
        try:
            text = (self.path / (v2 if self.version == 2 else v1)).read_text().strip()
        except OSError:
            return None
        if text == "max":
            return None
        try:
            value = int(text)
        except ValueError:
            return None
        return None if value >= _UNLIMITED else value

    @property
    def limit(self) -> int | None:
        """The hard limit in bytes, or None when the cgroup is unlimited."""
        return self._read("memory.max", "memory.limit_in_bytes")

    def current(self) -> int | None:
        """Bytes charged to the cgroup now (resident memory and page cache)."""
        return self._read("memory.current", "memory.usage_in_bytes")

    def peak(self) -> int | None:
        """The cgroup's own high-water mark since it was created (None on kernels without it)."""
        return self._read("memory.peak", "memory.max_usage_in_bytes")


def memory_cgroup(pid: int | str = "self", root: Path = Path("/sys/fs/cgroup"),
                  proc: Path = Path("/proc")) -> Cgroup | None:
    """The memory cgroup of ``pid``, read from ``/proc/PID/cgroup``; None when there is none.

    Reading the process's own entry (not the top of the hierarchy) matters outside a container:
    there the top is the whole machine, while a limit applies to the group the process is in."""
    try:
        lines = (proc / str(pid) / "cgroup").read_text().splitlines()
    except OSError:
        return None
    for line in lines:  # v1: "4:memory:/path"; v2: "0::/path"
        number, controllers, rel = (line.split(":", 2) + ["", ""])[:3]
        if "memory" in controllers.split(","):
            for base in (root / "memory", root):
                candidate = base / rel.lstrip("/")
                if (candidate / "memory.usage_in_bytes").exists():
                    return Cgroup(candidate, 1)
        elif number == "0" and not controllers:
            candidate = root / rel.lstrip("/")
            if (candidate / "memory.current").exists():
                return Cgroup(candidate, 2)
    return None


def limited_cgroup(pid: int | str = "self") -> Cgroup | None:
    """The memory cgroup of ``pid`` when it has a limit (a container such as Binder's), else None."""
    group = memory_cgroup(pid)
    return group if group is not None and group.limit is not None else None


@dataclass
class TreePeaks:
    """Peaks seen by :class:`TreeSampler`, in MiB (None where nothing could be read)."""

    tree_rss_mb: float | None = None
    tree_pss_mb: float | None = None
    tree_anon_mb: float | None = None  # the anonymous part of the tree's PSS
    largest_anon_mb: float | None = None  # of the one process with the most
    cgroup_mb: float | None = None
    cgroup_limit_mb: float | None = None


def _added_rss(child: object) -> int:
    """The RSS ``child`` adds to a tree sum. A fork that has not exec'd yet runs its parent's
    program and shares its pages copy-on-write, so only its private pages (USS) count: summing
    its RSS would count the parent twice."""
    parent = child.parent()  # type: ignore[attr-defined]
    if parent is not None and child.cmdline() == parent.cmdline():  # type: ignore[attr-defined]
        return child.memory_full_info().uss  # type: ignore[attr-defined]
    return child.memory_info().rss  # type: ignore[attr-defined]


class TreeSampler:
    """Samples every descendant of this process on a daemon thread: the tree's summed RSS, its
    summed PSS and the anonymous part of it, the largest single process's anonymous memory, and
    - inside a memory-limited cgroup - that cgroup's charge. ``peaks`` holds the highest values
    seen (a context manager)."""

    def __init__(self, interval: float = 0.2) -> None:
        self.peaks = TreePeaks()
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="forgekit-memory")
        self._cgroup = limited_cgroup()

    @staticmethod
    def _up(old: float | None, new_bytes: int | None) -> float | None:
        if new_bytes is None:
            return old
        return max(old or 0.0, round(new_bytes / MIB, 1))

    def sample(self) -> None:
        """Take one sample now (also what the thread does every ``interval`` seconds)."""
        import psutil

        rss = pss = anon = largest = 0
        read_pss = False
        for child in psutil.Process().children(recursive=True):
            with contextlib.suppress(psutil.Error):  # exited between listing and reading
                rss += _added_rss(child)
                rollup = smaps_rollup(child.pid)
                if rollup is not None:
                    read_pss = True
                    pss += rollup.get("Pss", 0)
                    anon += rollup.get("Pss_Anon", 0)
                    largest = max(largest, rollup.get("Pss_Anon", 0))
        p = self.peaks
        p.tree_rss_mb = self._up(p.tree_rss_mb, rss)
        if read_pss:
            p.tree_pss_mb = self._up(p.tree_pss_mb, pss)
            p.tree_anon_mb = self._up(p.tree_anon_mb, anon)
            p.largest_anon_mb = self._up(p.largest_anon_mb, largest)
        if self._cgroup is not None:
            p.cgroup_mb = self._up(p.cgroup_mb, self._cgroup.current())
            p.cgroup_limit_mb = round((self._cgroup.limit or 0) / MIB, 1)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self._interval)

    def __enter__(self) -> TreeSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def headroom_bytes() -> int | None:
    """Bytes this process may still use: the smaller of its cgroup's headroom (when limited)
    and the machine's MemAvailable; None when neither can be read."""
    free = []
    group = limited_cgroup()
    if group is not None and group.limit is not None:
        free.append(max(0, group.limit - (group.current() or 0)))
    with contextlib.suppress(OSError, ValueError, IndexError), open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                free.append(int(line.split()[1]) * 1024)
                break
    return min(free) if free else None

