"""Set up JupyterLab in this Python environment so a learner opens a lesson without friction.

Run by the Makefile's install step and by binder/postBuild (both with the environment's python):

- the kernel every notebook names (``python3``) is installed with the display name the notebooks
  store, so JupyterLab does not rewrite their metadata and mark them modified on open (the
  ipykernel wheel ships ``Python 3 (ipykernel)``);
- the announcements plugin is disabled (JupyterLab's documented way: ``disabledExtensions`` in
  ``labconfig/page_config.json``, the file ``jupyter labextension disable`` writes), so no
  "Would you like to get notified about official Jupyter news?" prompt and no news or update
  request leaves the machine;
- the Jupyter server reads notebooks through ``forgekit.course.lab.CourseContentsManager``, which matches
  their ``language_info`` to the kernel's: without it JupyterLab marks every lesson modified on
  open, because the stored metadata does not carry this machine's Python patch version.

tests/test_lab.py checks the notebooks against these constants and the installed environment.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

KERNEL_NAME = "python3"
KERNEL_DISPLAY_NAME = "Python 3"
DISABLED_PLUGINS = ("@jupyterlab/apputils-extension:announcements",)
CONTENTS_MANAGER = "forgekit.course.lab.CourseContentsManager"


def page_config_path(prefix: str | Path = sys.prefix) -> Path:
    """The environment-level (``sys_prefix``) page config JupyterLab reads at start."""
    return Path(prefix) / "etc" / "jupyter" / "labconfig" / "page_config.json"


def disable_plugins(prefix: str | Path = sys.prefix) -> Path:
    """Add DISABLED_PLUGINS to the environment's page config, keeping whatever else it holds."""
    path = page_config_path(prefix)
    config = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    config.setdefault("disabledExtensions", {}).update(dict.fromkeys(DISABLED_PLUGINS, True))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    return path


def server_config_path(prefix: str | Path = sys.prefix) -> Path:
    """The environment-level Jupyter server config (``config.d`` drop-ins only enable
    extensions; other settings must be in this file)."""
    return Path(prefix) / "etc" / "jupyter" / "jupyter_server_config.json"


def configure_server(prefix: str | Path = sys.prefix) -> Path:
    """Point the environment's Jupyter server at the course's contents manager."""
    path = server_config_path(prefix)
    config = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    config.setdefault("ServerApp", {})["contents_manager_class"] = CONTENTS_MANAGER
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    return path


def install_kernel(prefix: str | Path = sys.prefix) -> str:
    """Install this interpreter's kernelspec under ``prefix``; returns its folder."""
    from ipykernel.kernelspec import install

    return install(kernel_name=KERNEL_NAME, display_name=KERNEL_DISPLAY_NAME, prefix=str(prefix))


def main() -> int:
    install_kernel()
    disable_plugins()
    configure_server()
    return 0


if __name__ == "__main__":
    sys.exit(main())
