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


def output_dir(path: str | os.PathLike[str], clean: bool = True) -> Path:
    """Create a lesson's output folder and return it as an absolute path.

    With ``clean=True`` (the default) an existing folder is emptied first, so a lesson re-run
    from the top never sees files from the previous run.
    """
    folder = Path(path).expanduser().resolve()
    if clean and folder.exists():
        if folder == Path(folder.anchor) or folder == Path.home().resolve():
            raise ValueError(f"Refusing to empty {folder}: choose a dedicated output folder.")
        shutil.rmtree(folder)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def tree(path: str | os.PathLike[str], max_entries: int = 60) -> str:
    """An ASCII tree of ``path`` with file sizes, the way a lesson shows an on-disk layout."""
    root = Path(path)
    lines = [f"{root.name}/" if root.is_dir() else f"{root.name}  ({_size(root)})"]

    def walk(folder: Path, prefix: str) -> None:
        entries = sorted(folder.iterdir(), key=lambda p: (p.is_file(), p.name))
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
