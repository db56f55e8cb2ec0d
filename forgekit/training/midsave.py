"""Kill a plain Python script with SIGKILL in the middle of writing a ``.keras`` file.

:func:`kill_mid_save` runs ``python -m forgekit.training.midsave STATUS N script.py``: the script
itself is untouched and runs as ``__main__``; this module only counts the times the process opens
a file whose name ends in ``.keras`` for writing (``model.save`` and ``ModelCheckpoint`` do, once
per save). In the N-th such file it writes half as many bytes as the previous save had, records
the path and the byte count in STATUS, and waits. The parent then sends the real SIGKILL: a fixed
point in the middle of a save, the same on every machine, with no timing race.
"""

from __future__ import annotations

import builtins
import io
import json
import os
import runpy
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from forgekit.quiet import child_env


@dataclass(frozen=True)
class MidSaveKill:
    """What happened to a script run by :func:`kill_mid_save`."""

    killed: bool  # True: SIGKILLed in the middle of save number `save`
    returncode: int
    stdout: str
    stderr: str
    path: Path | None  # the file being written when the kill came
    bytes_written: int  # the file's length as the process had written it when killed
    previous_bytes: int  # size of the previous complete save (0: none)

    def __str__(self) -> str:
        if not self.killed:
            return f"not killed: the script exited with code {self.returncode}"
        return (f"SIGKILL in the middle of writing {self.path.name}: {self.bytes_written:,} bytes "
                f"written (the previous save had {self.previous_bytes:,})")


def kill_mid_save(script: str | os.PathLike[str], cwd: str | os.PathLike[str], save: int, *,
                  env: dict[str, str] | None = None, args: tuple[str, ...] = (),
                  timeout: float = 180.0) -> MidSaveKill:
    """Run ``script`` in ``cwd`` and SIGKILL it half-way through its ``save``-th ``.keras`` write.

    Returns a :class:`MidSaveKill`; ``killed`` is False when the script ended (or failed) before
    that save. Raises ``TimeoutError`` (after killing it) when it neither saves nor ends in time.
    """
    cwd = Path(cwd)
    status = cwd / f".midsave-{os.getpid()}-{time.monotonic_ns()}.json"
    cmd = [sys.executable, "-m", "forgekit.training.midsave", str(status), str(save),
           str(script), *args]
    proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=child_env(env))
    deadline, killed, info = time.monotonic() + timeout, False, {}
    try:
        while proc.poll() is None:
            if status.exists() and status.read_text().endswith("\n"):
                info = json.loads(status.read_text())
                proc.send_signal(signal.SIGKILL)  # the process is inside the save, waiting
                killed = True
                break
            if time.monotonic() > deadline:
                proc.kill()
                raise TimeoutError(f"{script} neither reached save {save} nor ended in {timeout:.0f} s")
            time.sleep(0.02)
        out, err = proc.communicate()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
        status.unlink(missing_ok=True)
    path = Path(info["path"]) if info else None
    return MidSaveKill(killed, proc.returncode, out, err, path,
                       info.get("bytes_written", 0), info.get("previous_bytes", 0))


class _PausingFile(io.FileIO):
    """A raw (unbuffered) file that, when ``limit`` is set, stops after ``limit`` bytes and waits."""

    def __init__(self, path: str | os.PathLike[str], mode: str, limit: int | None,
                 status: str, sizes: list[int], previous: int = 0) -> None:
        super().__init__(path, mode.replace("b", "").replace("t", ""))
        self.written, self.limit, self.status, self.sizes = 0, limit, status, sizes
        self.previous, self.high = previous, 0  # high: the file's length as written so far

    def write(self, data: Any) -> int:
        view = memoryview(data).cast("B")
        size = len(view)
        if self.limit is not None and self.written + size >= self.limit:
            self._write_all(view[: self.limit - self.written])
            Path(self.status).write_text(json.dumps({
                "path": str(Path(self.name).resolve()), "bytes_written": self.high,
                "previous_bytes": self.previous}) + "\n")
            while True:  # the parent's SIGKILL ends this
                time.sleep(1)
        self._write_all(view)
        return size

    def _write_all(self, view: memoryview) -> None:
        while view:
            n = super().write(view)
            self.written += n
            self.high = max(self.high, self.tell())  # zipfile seeks back to patch headers
            view = view[n:]

    def close(self) -> None:
        if not self.closed:
            self.sizes.append(self.high)
        super().close()


def _main(status: str, save: int, script: str, *args: str) -> None:
    real_open, count, sizes = builtins.open, [0], []

    def counting_open(file: Any, mode: str = "r", *a: Any, **kw: Any) -> Any:
        if ("w" in mode and "b" in mode and isinstance(file, (str, os.PathLike))
                and str(file).endswith(".keras")):
            count[0] += 1
            limit, before = None, 0
            if count[0] == save:
                before = sizes[-1] if sizes else (os.path.getsize(file) if os.path.exists(file) else 0)
                limit = max(1, before // 2) if before else 4096
            return _PausingFile(file, mode, limit, status, sizes, before)
        return real_open(file, mode, *a, **kw)

    builtins.open = counting_open
    sys.argv = [script, *args]
    sys.path.insert(0, str(Path(script).resolve().parent))
    runpy.run_path(script, run_name="__main__")


if __name__ == "__main__":
    _main(sys.argv[1], int(sys.argv[2]), sys.argv[3], *sys.argv[4:])
