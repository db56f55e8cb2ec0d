"""The full lock: every installed package, its exact version and its hashes (`make lock`).

pyproject.toml pins the direct dependencies; `requirements.lock` is those pins resolved against
PyPI with everything they pull in, for every platform Python 3.11 runs on (uv's universal
resolution writes an environment marker where a package is platform-specific). `make lab`,
`make test`, `.ci/run` and Binder install from it, so a new release of any transitive dependency
changes nothing here until someone runs `make lock` and commits the result.

Re-running it is idempotent: uv keeps every version already in the lock that still satisfies
pyproject.toml, so only a changed pin (and whatever it forces) moves.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LOCK_NAME = "requirements.lock"
EXTRAS = ("test",)  # what `make` installs: the package's dependencies plus its test extra
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


def pins(root: Path = ROOT) -> dict[str, str]:
    """``{name: version}`` of the exact pins in pyproject.toml that the lock covers."""
    project = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    requirements = list(project["dependencies"])
    for extra in EXTRAS:
        requirements += project["optional-dependencies"][extra]
    found = {}
    for req in requirements:
        name, sep, version = req.partition("==")
        if not sep:
            raise ValueError(f"pyproject.toml: {req!r} is not pinned exactly (name==x.y.z)")
        found[normalize(name.split("[")[0])] = version.strip()
    return found


def disagreements(root: Path = ROOT, lock: Path | None = None) -> list[str]:
    """Every pin in pyproject.toml that the lock does not hold at exactly that version."""
    locked = installable(lock or root / LOCK_NAME)
    problems = []
    for name, version in pins(root).items():
        if name not in locked:
            problems.append(f"{name}=={version} is pinned in pyproject.toml but not in the lock")
        elif locked[name] != version:
            problems.append(f"{name}: pyproject.toml pins {version}, the lock has {locked[name]}")
    return problems


def uv() -> str:
    """The uv binary installed in this venv from its pin (see pyproject.toml)."""
    try:
        from uv import find_uv_bin
    except ImportError:
        sys.exit("uv is not installed in this venv: run `make lock` (it bootstraps uv first)")
    return find_uv_bin()


def python_version(root: Path = ROOT) -> str:
    """``"3.11"`` from ``requires-python = ">=3.11,<3.12"``."""
    spec = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))
    return spec["project"]["requires-python"].split(",")[0].lstrip(">=~")


def compile_command(output: Path, root: Path = ROOT, *extra: str) -> list[str]:
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


def main() -> int:
    lock = compile_lock()
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
