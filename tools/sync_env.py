"""Regenerate environment.yml and binder/ from the pins in pyproject.toml.

pyproject.toml is the single source of versions. Run `make env-files` after changing a pin;
tests/test_pins.py fails when the generated files are stale.
"""

from __future__ import annotations

import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HEADER = "# Generated from pyproject.toml by tools/sync_env.py; edit pins there, then `make env-files`.\n"


def pins(root: Path = ROOT) -> list[str]:
    """Runtime and test requirements, exactly as pinned in pyproject.toml."""
    project = tomllib.loads((root / "pyproject.toml").read_text())["project"]
    return list(project["dependencies"]) + list(project["optional-dependencies"]["test"])


def python_version(root: Path = ROOT) -> str:
    spec = tomllib.loads((root / "pyproject.toml").read_text())["project"]["requires-python"]
    return spec.split(",")[0].lstrip(">=~")  # ">=3.11,<3.12" -> "3.11"


def environment_yml(root: Path = ROOT, install_self: bool = True) -> str:
    lines = [HEADER, "name: forgekit\n", "channels:\n  - conda-forge\n", "dependencies:\n",
             f"  - python={python_version(root)}\n", "  - pip\n", "  - pip:\n"]
    lines += [f"      - {req}\n" for req in pins(root)]
    if install_self:  # binder installs the package in postBuild instead (repo2docker runs it there)
        lines.append("      - -e .\n")
    return "".join(lines)


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


def files(root: Path = ROOT) -> dict[Path, str]:
    """Every generated file and its expected content."""
    return {
        root / "environment.yml": environment_yml(root),
        root / "binder" / "environment.yml": environment_yml(root, install_self=False),
        root / "binder" / "postBuild": "#!/usr/bin/env bash\n" + POSTBUILD,
        root / "binder" / "start": "#!/usr/bin/env bash\n" + START,
    }


def main() -> int:
    for path, text in files().items():
        path.parent.mkdir(exist_ok=True)
        path.write_text(text)
        if path.parent.name == "binder" and path.suffix == "":
            path.chmod(0o755)
        print(f"wrote {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
