"""The full lock: every installed package, its exact version and its hashes (`make lock`).

pyproject.toml declares the direct dependencies as compatible ranges (so forgekit installs into
a learner's own environment); `requirements.lock` is the one place exact versions live: those
ranges resolved against PyPI with everything they pull in, for every platform and every Python
that pyproject.toml allows (3.11-3.13; uv's universal resolution writes an environment marker
where a package differs by platform or Python). `make lab`, `make test`, `.ci/run` and Binder
install from it, so a new release of any package changes nothing here until someone runs
`make lock` and commits the result.

Re-running it is idempotent: uv keeps every version already in the lock that still satisfies
pyproject.toml, so nothing moves unless a range excludes it or `make lock UPGRADE=name` (uv's
``--upgrade-package``) asks for it.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
LOCK_NAME = "requirements.lock"
EXTRAS = ("course", "test")  # what `make` installs: the dependencies plus these extras
# Every Python the lock must install on (pyproject.toml's requires-python), checked by the tests.
PYTHONS = ("3.11", "3.12", "3.13")
PYPI = "https://pypi.org/simple"  # the only index; this machine's pip.conf is never consulted


def normalize(name: str) -> str:
    """PEP 503 name: ``Tf_Keras`` and ``tf-keras`` are the same package."""
    return re.sub(r"[-_.]+", "-", name).lower()


@dataclass
class Locked:
    """One entry of the lock."""

    name: str
    version: str
    marker: str | None = None
    hashes: list[str] = field(default_factory=list)

    def applies(self, environment: dict[str, str] | None = None) -> bool:
        """Whether this entry installs in ``environment`` (default: the running interpreter)."""
        if not self.marker:
            return True
        from packaging.markers import Marker

        return Marker(self.marker).evaluate(environment)


_ENTRY = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)==(?P<version>[^\s;\\]+)"
                    r"(?:\s*;\s*(?P<marker>[^\\]+?))?\s*\\?$")


def parse(path: str | os.PathLike[str]) -> list[Locked]:
    """Every entry of a uv/pip-compile requirements file with hashes, in file order."""
    entries: list[Locked] = []
    for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.startswith("--hash="):
            if not entries:
                raise ValueError(f"{path}:{number}: a hash before any requirement")
            entries[-1].hashes.append(stripped.removeprefix("--hash=").rstrip(" \\"))
            continue
        match = _ENTRY.match(stripped)
        if not match or line[0].isspace():
            raise ValueError(f"{path}:{number}: expected 'name==version [; marker] \\' as "
                             f"`make lock` writes it, found {stripped!r}")
        entries.append(Locked(normalize(match["name"]), match["version"],
                              (match["marker"] or "").strip() or None))
    return entries


def installable(path: str | os.PathLike[str],
                environment: dict[str, str] | None = None) -> dict[str, str]:
    """``{name: version}`` of the lock entries that install in ``environment``."""
    return {e.name: e.version for e in parse(path) if e.applies(environment)}


def requirements(root: Path = ROOT) -> list[Any]:
    """The direct requirements in pyproject.toml that the lock covers (dependencies + EXTRAS),
    as ``packaging`` Requirement objects (name, specifier range, marker)."""
    from packaging.requirements import Requirement

    project = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    found = list(project["dependencies"])
    for extra in EXTRAS:
        found += project["optional-dependencies"][extra]
    return [Requirement(r) for r in found]


def environment(python: str) -> dict[str, str]:
    """Marker values of a Linux x86_64 CPython ``python`` ("3.12"): what the lock is checked in."""
    return {"python_version": python, "python_full_version": f"{python}.0",
            "sys_platform": "linux", "platform_system": "Linux", "platform_machine": "x86_64",
            "os_name": "posix", "implementation_name": "cpython",
            "platform_python_implementation": "CPython", "extra": ""}


def disagreements(root: Path = ROOT, lock: Path | None = None) -> list[str]:
    """Every direct requirement the lock does not satisfy, for every Python it must install on:
    missing, or locked at a version outside pyproject.toml's range."""
    entries = parse(lock or root / LOCK_NAME)
    problems = []
    for python in PYTHONS:
        env = environment(python)
        locked = {e.name: e.version for e in entries if e.applies(env)}
        for req in requirements(root):
            name = normalize(req.name)
            if name not in locked:
                problems.append(f"{req} is required by pyproject.toml but not in the lock "
                                f"for Python {python}")
            elif not req.specifier.contains(locked[name], prereleases=True):
                problems.append(f"{name}: pyproject.toml requires {req.specifier}, the lock has "
                                f"{locked[name]} for Python {python}")
    return problems


def locked_version(name: str, root: Path = ROOT) -> str:
    """The version the lock installs for ``name`` here (e.g. the course's TensorFlow)."""
    return installable(root / LOCK_NAME)[normalize(name)]


def uv() -> str:
    """The uv binary installed in this venv from its pin (see pyproject.toml)."""
    try:
        from uv import find_uv_bin
    except ImportError:
        sys.exit("uv is not installed in this venv: run `make lock` (it bootstraps uv first)")
    return find_uv_bin()


def python_version(root: Path = ROOT) -> str:
    """``"3.11"`` from ``requires-python = ">=3.11,<3.14"``: the oldest Python the lock serves
    (uv resolves upward from it; Binder and conda use it)."""
    spec = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))
    return spec["project"]["requires-python"].split(",")[0].lstrip(">=~")


def compile_command(output: Path, root: Path = ROOT, *extra: str) -> list[str]:
    # --universal: one lock for every platform and every Python requires-python allows.
    """The one `uv pip compile` call that writes the lock (also used by the tests and drift)."""
    return [uv(), "pip", "compile", "pyproject.toml", *(f"--extra={e}" for e in EXTRAS),
            "--universal", f"--python-version={python_version(root)}", "--generate-hashes",
            "--no-config", f"--index-url={PYPI}", "--custom-compile-command=make lock",
            "--quiet", f"--output-file={output}", *extra]


def uv_environment() -> dict[str, str]:
    """This process's environment without UV_* settings that could add indexes or pins."""
    return {k: v for k, v in os.environ.items()
            if not k.startswith("UV_") or k in ("UV_CACHE_DIR", "UV_LINK_MODE")}


def compile_lock(output: Path | None = None, root: Path = ROOT, *extra: str) -> Path:
    """Resolve pyproject.toml into ``output`` (default: the lock), keeping its current versions."""
    output = Path(output or root / LOCK_NAME).resolve()
    done = subprocess.run(compile_command(output, root, *extra), cwd=root, env=uv_environment(),
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"uv pip compile failed (exit {done.returncode}):\n{done.stderr}")
    return output


def main(argv: list[str] | None = None) -> int:
    upgrade = [f"--upgrade-package={name}" for name in (argv if argv is not None else sys.argv[1:])]
    lock = compile_lock(None, ROOT, *upgrade)
    entries = parse(lock)
    here = sum(e.applies() for e in entries)
    print(f"wrote {lock.name}: {len(entries)} packages ({here} install on this platform), "
          f"{lock.stat().st_size:,} bytes")
    problems = disagreements()
    for problem in problems:
        print("error:", problem, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
