"""Regenerate environment.yml and binder/ from the lock (requirements.lock).

pyproject.toml declares the ranges and requirements.lock (`make lock`) holds the exact versions;
everything else is generated from the lock here, so conda users, Binder and the venv get the
same versions. `make lock` runs this after resolving; tests/test_pins.py fails when a generated
file is stale.

- environment.yml (conda users): Python from pyproject.toml, then every locked version for pip,
  without hashes (pip's hash-checking mode refuses the editable ``-e .`` in the same install).
- binder/requirements.txt + binder/runtime.txt: the lock itself, hashes included; repo2docker
  then pip-installs exact files instead of running a conda solve.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __package__ in (None, ""):  # `python tools/sync_env.py`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tools import lock

ROOT = lock.ROOT
HEADER = ("# Generated from requirements.lock by tools/sync_env.py; edit ranges in pyproject.toml, "
          "then `make lock`.\n")


def python_version(root: Path = ROOT) -> str:
    return lock.python_version(root)  # ">=3.11,<3.14" -> "3.11": Binder's pinned runtime


def _locked_lines(root: Path) -> list[str]:
    return [f"{e.name}=={e.version}" + (f" ; {e.marker}" if e.marker else "")
            for e in lock.parse(root / lock.LOCK_NAME)]


def environment_yml(root: Path = ROOT) -> str:
    lines = [HEADER, "name: forgekit\n", "channels:\n  - conda-forge\n", "dependencies:\n",
             f"  - python={python_version(root)}\n", "  - pip\n", "  - pip:\n"]
    lines += [f'      - "{req}"\n' for req in _locked_lines(root)]
    lines.append("      - -e .\n")
    return "".join(lines)


def binder_requirements(root: Path = ROOT) -> str:
    """The lock, verbatim below a header: every package with its hashes."""
    text = (root / lock.LOCK_NAME).read_text(encoding="utf-8")
    return HEADER + "# repo2docker installs it with pip (hash-checking mode); postBuild adds forgekit.\n" + text


POSTBUILD = HEADER + """set -euo pipefail
# repo2docker reads only binder/ when it exists: install the course package itself here.
python -m pip install --no-deps -e .
# The kernel under the display name the notebooks store, and no "Jupyter news?" prompt.
python tools/setup_lab.py
"""

START = HEADER + """# Quiet, CPU-only TensorFlow for every kernel started on Binder.
export TF_CPP_MIN_LOG_LEVEL=3 TF_ENABLE_ONEDNN_OPTS=0 CUDA_VISIBLE_DEVICES=-1
exec "$@"
"""

# repo2docker picks its conda build pack over requirements.txt when this exists.
OBSOLETE = ("binder/environment.yml",)


def files(root: Path = ROOT) -> dict[Path, str]:
    """Every generated file and its expected content."""
    return {
        root / "environment.yml": environment_yml(root),
        root / "binder" / "requirements.txt": binder_requirements(root),
        root / "binder" / "runtime.txt": f"python-{python_version(root)}\n",
        root / "binder" / "postBuild": "#!/usr/bin/env bash\n" + POSTBUILD,
        root / "binder" / "start": "#!/usr/bin/env bash\n" + START,
    }


def main() -> int:
    for path, text in files().items():
        path.parent.mkdir(exist_ok=True)
        path.write_text(text, encoding="utf-8")
        if path.parent.name == "binder" and path.suffix == "":
            path.chmod(0o755)
        print(f"wrote {path.relative_to(ROOT)}")
    for name in OBSOLETE:
        if (ROOT / name).exists():
            (ROOT / name).unlink()
            print(f"removed {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
