"""What this machine runs: versions, devices, memory, disk, and known-bad combinations.

Versions come from package metadata, so the report is cheap and does not import TensorFlow unless
device detection is asked for.
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from forgekit.package_versions import installed_version, parse_version
from forgekit.table import Fields

PACKAGES = ("tensorflow", "keras", "tf-keras", "h5py", "numpy", "protobuf",
            "tensorflow-serving-api")


def _major_minor(version: str | None) -> tuple[int, ...] | None:
    parsed = parse_version(version)
    return parsed[:2] if parsed and len(parsed) >= 2 else None


# The TensorFlow releases every lesson is run on (README, "Supported versions"): the pinned one
# and the release before it.
SUPPORTED_TF = ((2, 20), (2, 21))


def known_problems(versions: dict[str, str | None], env: dict[str, str] | None = None,
                   python: tuple[int, int] | None = None) -> list[str]:
    """Warnings for combinations that break saving/loading in ways the course has seen.

    Pure function of its inputs so every rule is unit-tested without changing the machine.
    """
    env = dict(os.environ) if env is None else env
    python = python or sys.version_info[:2]
    tf, keras, tfk = (_major_minor(versions.get(k)) for k in ("tensorflow", "keras", "tf-keras"))
    out: list[str] = []
    if not (3, 11) <= python <= (3, 13):
        out.append(f"Python {python[0]}.{python[1]}: the course is tested on 3.11, 3.12 and 3.13 "
                   "(the Pythons TensorFlow 2.21 publishes wheels for).")
    if tf and not SUPPORTED_TF[0] <= tf <= SUPPORTED_TF[1]:
        out.append(f"TensorFlow {versions['tensorflow']}: the lessons are measured on "
                   f"{SUPPORTED_TF[0][0]}.{SUPPORTED_TF[0][1]}-{SUPPORTED_TF[1][0]}."
                   f"{SUPPORTED_TF[1][1]}; they run on others, and a claim whose verdict moved is "
                   "shown as drift.")
    if tf is None:
        out.append("TensorFlow is not installed: run `make lab` or `make test` to create .venv.")
    if tf and tf >= (2, 16) and keras and keras < (3, 0):
        out.append(f"TensorFlow {versions['tensorflow']} expects Keras 3 but Keras "
                   f"{versions['keras']} is installed: tf.keras will fail to import.")
    if tf and tfk and tf != tfk:
        out.append(f"tf-keras {versions['tf-keras']} does not match TensorFlow "
                   f"{versions['tensorflow']}: tf-keras must share TensorFlow's major.minor.")
    if env.get("TF_USE_LEGACY_KERAS", "").strip().lower() in ("1", "true", "yes"):
        out.append("TF_USE_LEGACY_KERAS is set: tf.keras is Keras 2 (tf-keras) in this process, "
                   "so files and error messages differ from the Keras 3 lessons. Unset it.")
    h5 = _major_minor(versions.get("h5py"))
    if h5 and h5 < (3, 10):
        out.append(f"h5py {versions['h5py']} is older than Keras 3 supports (3.10+).")
    np_ = _major_minor(versions.get("numpy"))
    if tf and np_ and tf < (2, 18) and np_ >= (2, 0):
        out.append(f"NumPy {versions['numpy']} with TensorFlow {versions['tensorflow']}: "
                   "TensorFlow before 2.18 is built against NumPy 1.x.")
    return out


@dataclass(repr=False)
class EnvironmentReport:
    """The environment as the course sees it. Renders as text and as an HTML table."""

    python: str
    platform: str
    versions: dict[str, str | None]
    cpu_count: int
    gpus: list[str] | None  # what TensorFlow sees in this process (None: not checked)
    memory_total_gb: float
    memory_available_gb: float
    disk_free_gb: float
    problems: list[str] = field(default_factory=list)
    hardware_gpus: list[str] | None = None  # NVIDIA GPUs in the machine (None: cannot tell)
    cuda_visible_devices: str | None = None  # as set for this process

    def rows(self) -> list[tuple[str, str]]:
        """(label, value) pairs: the report, in the order it is read."""
        hardware = ("cannot tell (no NVIDIA driver interface found)" if self.hardware_gpus is None
                    else ", ".join(self.hardware_gpus) or "none found")
        rows = [("Python", self.python), ("Platform", self.platform)]
        rows += [(name, v or "not installed") for name, v in self.versions.items()]
        rows += [
            ("CPU cores", str(self.cpu_count)),
            ("GPUs in this machine", hardware),
            ("GPUs this course uses", self._course_gpus()),
            ("Memory available / total", f"{self.memory_available_gb:.1f} / "
                                         f"{self.memory_total_gb:.1f} GB"),
            ("Disk free (working dir)", f"{self.disk_free_gb:.1f} GB"),
        ]
        return rows

    def _course_gpus(self) -> str:
        if self.cuda_visible_devices is not None and self.cuda_visible_devices.strip() == "-1":
            return "none: CPU only (CUDA_VISIBLE_DEVICES=-1, e.g. forgekit.quiet_tf(cpu_only=True))"
        if self.gpus is None:
            return "not checked (TensorFlow not imported)"
        return ", ".join(self.gpus) or "none visible to TensorFlow"

    @property
    def ok(self) -> bool:
        """No known-bad combination found."""
        return not self.problems

    def _fields(self) -> Fields:
        verdict = ([f"✗ {p}" for p in self.problems] if self.problems
                   else ["✓ No known-bad combinations found."])
        return Fields(self.rows(), code=True, notes=verdict)

    def __str__(self) -> str:
        return str(self._fields())

    __repr__ = __str__

    def _repr_html_(self) -> str:
        return self._fields()._repr_html_()


def hardware_gpus() -> list[str] | None:
    """The NVIDIA GPUs the machine has, whatever this process may use; None: cannot tell.

    Read from the driver (``/proc/driver/nvidia/gpus``, else ``nvidia-smi -L``), not from
    TensorFlow, which sees none under ``CUDA_VISIBLE_DEVICES=-1``.
    """
    proc = Path("/proc/driver/nvidia/gpus")
    if proc.is_dir():
        names = []
        for info in sorted(proc.glob("*/information")):
            text = info.read_text(errors="replace")
            model = next((line.split(":", 1)[1].strip() for line in text.splitlines()
                          if line.startswith("Model:")), info.parent.name)
            names.append(model)
        return names
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return [] if Path("/proc").is_dir() else None  # Linux without the driver: none
    try:
        done = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return [line.split(" (UUID")[0] for line in done.stdout.splitlines() if line.startswith("GPU")]


def environment_report(check_devices: bool = False) -> EnvironmentReport:
    """Collect the environment report.

    ``check_devices=True`` imports TensorFlow (quietly) to list the GPUs it sees; otherwise
    they are reported as "not checked" and the call stays fast and TensorFlow-free. The GPUs
    the machine has are read from the driver either way, and reported apart from what the
    course uses (CPU only, ``CUDA_VISIBLE_DEVICES=-1``).
    """
    versions = {name: installed_version(name) for name in PACKAGES}
    gpus = None
    if check_devices and versions["tensorflow"]:
        from forgekit.quiet import muted_stderr

        with muted_stderr():
            import tensorflow as tf

            gpus = [d.name for d in tf.config.list_physical_devices("GPU")]
    mem = psutil.virtual_memory()
    return EnvironmentReport(
        python=platform.python_version(),
        platform=f"{platform.system()} {platform.machine()}",
        versions=versions,
        cpu_count=os.cpu_count() or 1,
        gpus=gpus,
        memory_total_gb=mem.total / 2**30,
        memory_available_gb=mem.available / 2**30,
        disk_free_gb=shutil.disk_usage(os.getcwd()).free / 2**30,
        problems=known_problems(versions),
        hardware_gpus=hardware_gpus(),
        cuda_visible_devices=os.environ.get("CUDA_VISIBLE_DEVICES"),
    )
