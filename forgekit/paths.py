"""Where things live: the project root and each lesson's output folder, and the one rule by
which forgekit deletes anything.

The deletion rule: forgekit deletes only a folder it created and marked at creation (it holds
the :data:`MARKER` file), and never a folder that held anything else. :func:`claim_dir` creates
(or adopts an empty) folder and marks it; :func:`remove_claimed` deletes a marked folder and
nothing else; :func:`owner_gone` tells a marked folder whose process died on this host (a killed
publish) from one still in use, or made on another host. Lesson output folders, the explorers'
folders and ``publish``'s temporary folders all go through these functions.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import socket
from pathlib import Path

from forgekit.table import human_bytes

ROOT_ENV = "FORGEKIT_ROOT"


def fsync(path: str | os.PathLike[str]) -> None:
    """Flush a file's bytes, or a folder's entries (a rename into it), to disk.

    The one fsync of forgekit's atomic writes (checkpoints, publish, records). A folder the file
    system cannot fsync (EINVAL, as on some network mounts) is skipped: the rename stays atomic,
    only its survival of a power cut is lost. Any other error is raised.
    """
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError as exc:
        if not (exc.errno == errno.EINVAL and os.path.isdir(path)):
            raise
    finally:
        os.close(fd)


def write_text_atomic(path: str | os.PathLike[str], text: str, *, sync_dir: bool = True) -> None:
    """Write ``text`` to a temporary name beside ``path``, fsync it, then rename it over ``path``.

    A reader (a server polling its config, a verification reading a record) sees the old file
    or the new one, never half of one. ``sync_dir=False`` leaves the folder's fsync to the
    caller, when several files are renamed into one folder.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    if sync_dir:
        fsync(path.parent)


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


MARKER = ".forgekit-output"  # written into every folder forgekit creates; only those are deleted


class NotOursError(ValueError):
    """The folder exists, holds something, and forgekit did not create it: it is not used."""


def is_claimed(folder: str | os.PathLike[str]) -> bool:
    """``folder`` is a real folder (not a link) that forgekit created and marked."""
    folder = Path(folder)
    return (folder.is_dir() and not folder.is_symlink()
            and (folder / MARKER).is_file() and not (folder / MARKER).is_symlink())


def claim_dir(path: str | os.PathLike[str], *, adopt: bool = True) -> Path:
    """Create ``path`` (parents too) and mark it as forgekit's; return it.

    A folder that already exists is taken only when it is forgekit's already (marked) or, with
    ``adopt``, empty; anything else raises :class:`NotOursError` and nothing is written. The
    marker records who created it (host, process id and its start time), for
    :func:`owner_gone`.
    """
    folder = Path(path)
    try:
        folder.mkdir(parents=True)
    except FileExistsError:
        if not folder.is_dir() or folder.is_symlink():
            raise NotOursError(f"Refusing to use {folder}: it is not a folder of its own "
                               "(a file or a link).") from None
        if not is_claimed(folder) and not (adopt and not any(folder.iterdir())):
            raise NotOursError(
                f"Refusing to use {folder}: it already holds files and forgekit did not create "
                f"it (no {MARKER} file in it). Nothing was written or deleted; choose a new "
                "folder.") from None
    (folder / MARKER).write_text(json.dumps(_owner()) + "\n", encoding="utf-8")
    return folder


def remove_claimed(folder: str | os.PathLike[str]) -> bool:
    """Delete ``folder`` if forgekit created and marked it; True when it was deleted.

    A folder without the marker (a user's, or a link to one) is left as it is.
    """
    if not is_claimed(folder):
        return False
    shutil.rmtree(folder, ignore_errors=True)
    return not Path(folder).exists()


def owner_gone(folder: str | os.PathLike[str]) -> bool:
    """The marked ``folder``'s creator was a process on this host that is no longer running.

    False when it is not marked, when the marker names another host (a shared base path: its
    publisher may be alive there) or records no owner, and when the process still runs (the same
    process id with the same start time: a reused id is a different process).
    """
    if not is_claimed(folder):
        return False
    try:
        owner = json.loads((Path(folder) / MARKER).read_text(encoding="utf-8"))
        pid, host, started = int(owner["pid"]), owner["host"], owner.get("started")
    except (OSError, ValueError, KeyError, TypeError):
        return False
    if host != socket.gethostname() or pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        pass  # alive, another user's
    return started is not None and _started(pid) not in (None, started)


def _owner() -> dict[str, object]:
    return {"host": socket.gethostname(), "pid": os.getpid(), "started": _started(os.getpid())}


def _started(pid: int) -> int | None:
    """A process's start time in clock ticks since boot (Linux), to tell a reused pid."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            return int(f.read().rsplit(")", 1)[1].split()[19])
    except (OSError, ValueError, IndexError):
        return None


def output_dir(path: str | os.PathLike[str], clean: bool = True) -> Path:
    """Create a lesson's output folder and return it as an absolute path.

    With ``clean=True`` (the default) a folder this function created before (it holds the
    :data:`MARKER` file) is emptied first, so a lesson re-run from the top never sees files
    from the previous run. Any other folder is never emptied: not the working directory or a
    folder above it, not the home folder, not a project (``.git`` or ``pyproject.toml``, at any
    depth), not a folder forgekit did not create. An empty folder is adopted. With
    ``clean=False`` a non-empty folder forgekit did not create is used as it is, and not
    marked: a later ``output_dir(path)`` still refuses to empty it.

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
        remove_claimed(folder)
    elif not clean and folder.is_dir() and not is_claimed(folder) and any(folder.iterdir()):
        return folder  # someone else's folder: used, never marked (so never emptied later)
    claim_dir(folder)
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
    if not is_claimed(folder):
        return f"forgekit did not create it (no {MARKER} file in it)"
    nested = next((p for p in folder.rglob(".git")), None)
    if nested is not None:  # a repository cloned into it is not a lesson's output
        return f"it holds a repository ({nested.relative_to(folder)})"
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
