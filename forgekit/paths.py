"""Where things live: the project root and each lesson's output folder."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from forgekit.table import human_bytes

ROOT_ENV = "FORGEKIT_ROOT"


def project_root(start: str | os.PathLike[str] | None = None) -> Path:
    """The course's root folder.

    ``$FORGEKIT_ROOT`` wins; otherwise the nearest folder at or above ``start`` (default: the
    working directory) holding ``pyproject.toml`` or ``.git``. Code that builds paths from this,
    rather than from a hard-coded absolute path, keeps working when the project is moved.
    """
    if os.environ.get(ROOT_ENV):
        return Path(os.environ[ROOT_ENV]).expanduser().resolve()
    here = Path(start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "pyproject.toml").is_file() or (folder / ".git").exists():
            return folder
    raise FileNotFoundError(
        f"No project root above {here}: no pyproject.toml or .git found. "
        f"Set {ROOT_ENV}=/path/to/project to say where it is."
    )


MARKER = ".forgekit-output"  # written into every folder output_dir creates; only those are emptied


def output_dir(path: str | os.PathLike[str], clean: bool = True) -> Path:
    """Create a lesson's output folder and return it as an absolute path.

    With ``clean=True`` (the default) a folder this function created before (it holds the
    :data:`MARKER` file) is emptied first, so a lesson re-run from the top never sees files
    from the previous run. Any other folder is never emptied: not the working directory or a
    folder above it, not the home folder, not a project (``.git`` or ``pyproject.toml``), not
    a folder forgekit did not create. An empty folder is adopted.

    Raises:
        ValueError: ``clean=True`` and the folder exists but is not one to empty; nothing is
            deleted.
    """
    folder = Path(path).expanduser().resolve()
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"Refusing to use {folder}: it is a file, not a folder.")
    if clean and folder.is_dir() and any(e.name != MARKER for e in folder.iterdir()):
        refusal = _why_not_empty(folder)
        if refusal:
            raise ValueError(f"Refusing to empty {folder}: {refusal}. Nothing was deleted; "
                             "choose a dedicated output folder, e.g. output_dir = "
                             "\"../artifacts/<lesson>\".")
        shutil.rmtree(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / MARKER).touch()
    return folder


def _why_not_empty(folder: Path) -> str | None:
    """Why ``folder`` must not be emptied, or None when it is forgekit's own output folder."""
    cwd = Path.cwd().resolve()
    if folder == cwd or folder in cwd.parents:
        return "it is the working directory or a folder above it"
    if folder == Path(folder.anchor) or folder == Path.home().resolve():
        return "it is the home or root folder"
    if (folder / ".git").exists() or (folder / "pyproject.toml").exists():
        return "it holds a project (.git or pyproject.toml)"
    if not (folder / MARKER).is_file():
        return f"forgekit did not create it (no {MARKER} file in it)"
    return None


def tree(path: str | os.PathLike[str], max_entries: int = 60) -> str:
    """An ASCII tree of ``path`` with file sizes, the way a lesson shows an on-disk layout."""
    root = Path(path)
    lines = [f"{root.name}/" if root.is_dir() else f"{root.name}  ({_size(root)})"]

    def walk(folder: Path, prefix: str) -> None:
        entries = sorted((e for e in folder.iterdir() if e.name != MARKER),
                         key=lambda p: (p.is_file(), p.name))
        for i, entry in enumerate(entries):
            if len(lines) >= max_entries:
                lines.append(f"{prefix}… (truncated)")
                return
            last = i == len(entries) - 1
            branch = "└── " if last else "├── "
            if entry.is_dir() and not entry.is_symlink():
                lines.append(f"{prefix}{branch}{entry.name}/")
                walk(entry, prefix + ("    " if last else "│   "))
            else:
                lines.append(f"{prefix}{branch}{entry.name}  ({_size(entry)})")

    if root.is_dir():
        walk(root, "")
    return "\n".join(lines)


def _size(path: Path) -> str:
    try:
        return human_bytes(path.stat().st_size)
    except OSError:  # a dangling link or an unreadable entry: the tree is still worth showing
        return "?"


def project_path(*parts: str | os.PathLike[str],
                 start: str | os.PathLike[str] | None = None) -> Path:
    """A path inside the project, built from its root instead of typed as an absolute path.

    The root is ``$FORGEKIT_ROOT`` when set, else the nearest folder at or above ``start``
    holding ``pyproject.toml`` or ``.git`` (see :func:`project_root`). In a script, pass
    ``start=__file__`` so the answer does not depend on the working directory: the project can
    then be moved, cloned or mounted anywhere and ``project_path("models", "m.keras")`` still
    names its own model.
    """
    if start is not None and Path(start).is_file():
        start = Path(start).resolve().parent
    return project_root(start).joinpath(*parts)
