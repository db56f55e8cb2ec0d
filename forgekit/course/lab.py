"""JupyterLab integration: open a lesson without JupyterLab marking it modified.

On open, JupyterLab writes the kernel's ``language_info`` (Python version included) into the
notebook's metadata; any difference from what the file stores marks the notebook modified, so
every learner would see an unsaved lesson before touching it. Committed lessons store only
``{"name": "python"}`` (the Python patch version differs on every machine), so this contents
manager hands JupyterLab the running environment's ``language_info`` when it reads a lesson and
stores the portable stub again when it saves one.

``tools/setup_lab.py`` configures it for the environment (``make lab`` and Binder). Loaded only by
the Jupyter server, never by ``import forgekit``.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from jupyter_server.services.contents.largefilemanager import AsyncLargeFileManager

PORTABLE_LANGUAGE_INFO = {"name": "python"}


@cache
def kernel_language_info() -> dict[str, Any]:
    """What an ipykernel on this interpreter reports as ``language_info`` (same python as the
    server: the kernelspec ``tools/setup_lab.py`` installs runs ``sys.executable``)."""
    from ipykernel.ipkernel import IPythonKernel

    return dict(IPythonKernel.language_info)


def _is_python(metadata: dict[str, Any]) -> bool:
    spec, info = metadata.get("kernelspec") or {}, metadata.get("language_info") or {}
    return spec.get("language", "python") == "python" and info.get("name", "python") == "python"


class CourseContentsManager(AsyncLargeFileManager):
    """The default file contents manager, with ``language_info`` matched to the kernel."""

    async def get(self, path: str, content: bool = True, type: str | None = None,
                  format: str | None = None, **kwargs: Any) -> dict[str, Any]:
        model = await super().get(path, content=content, type=type, format=format, **kwargs)
        if model.get("type") == "notebook" and model.get("content"):
            metadata = model["content"]["metadata"]
            if _is_python(metadata):
                metadata["language_info"] = kernel_language_info()
        return model

    async def save(self, model: dict[str, Any], path: str = "") -> dict[str, Any]:
        if model.get("type") == "notebook" and model.get("content"):
            metadata = model["content"].get("metadata", {})
            if _is_python(metadata) and "language_info" in metadata:
                metadata["language_info"] = dict(PORTABLE_LANGUAGE_INFO)
        return await super().save(model, path)

