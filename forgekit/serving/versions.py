"""A model's versions on disk and in memory: TF Serving's version lifecycle.

TF Serving watches a model's *base path*. Every subdirectory whose name is a number is a
version (``0002`` is version 2); anything else is ignored. A *version policy* picks the
versions to serve: ``latest`` (the newest ``num_versions``, default 1), ``all``, or
``specific``. Its manager then makes that so without ever dropping availability:

* a new version is loaded off the request path and becomes ``AVAILABLE`` only once loaded;
  until then the previous version keeps answering;
* a version whose load fails is reported ``END`` with its error, and the one being served is
  left alone (TF Serving's *availability preserving* policy); it is tried again only once its
  directory changes (replaced, or files added), not on every poll;
* versions the policy no longer wants are unloaded (``END``, status OK) only once a wanted
  version is available, or when no version is wanted at all (every directory removed).

This module knows nothing of TensorFlow: the function that loads a version is passed in.
"""

from __future__ import annotations

import gc
import logging
import re
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, Literal, TypeVar

from forgekit.serving.errors import from_exception, invalid, not_found, shorten

log = logging.getLogger("forgekit.serving")

T = TypeVar("T")
_VERSION_DIR = re.compile(r"[0-9]{1,18}")  # fits an int64, like TF Serving's safe_strto64


@dataclass(frozen=True)
class VersionPolicy:
    """Which of the versions on disk to serve (TF Serving's ``ServableVersionPolicy``)."""

    kind: Literal["latest", "all", "specific"] = "latest"
    num_versions: int = 1
    versions: frozenset[int] = frozenset()

    def select(self, on_disk: Iterable[int]) -> set[int]:
        """The versions to serve among those on disk."""
        found = sorted(set(on_disk))
        if self.kind == "all":
            return set(found)
        if self.kind == "specific":
            return set(found) & self.versions
        return set(found[-max(self.num_versions, 1):]) if found else set()

    def describe(self) -> str:
        """A short form for the log: ``latest{2}``, ``all``, ``specific[1, 3]``."""
        if self.kind == "latest":
            return f"latest{{{max(self.num_versions, 1)}}}"
        if self.kind == "specific":
            return f"specific{sorted(self.versions)}"
        return "all"


@dataclass(frozen=True)
class ModelConfig:
    """One served model: a name, an absolute base path, a version policy and labels."""

    name: str
    base_path: Path
    policy: VersionPolicy = field(default_factory=VersionPolicy)
    labels: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class VersionStatus:
    """A version's state as ``GetModelStatus`` reports it."""

    version: int
    state: str  # START, LOADING, AVAILABLE, UNLOADING or END
    error_code: str = "OK"
    error_message: str = ""


def scan_versions(base_path: Path, name: str = "") -> dict[int, Path]:
    """Version number -> directory, for every numeric subdirectory of ``base_path``.

    Raises FileNotFoundError if the base path is missing. A version directory that resolves
    outside the base path (a symlink pointing elsewhere) is skipped with a warning: nothing
    outside a configured base path is ever loaded.
    """
    root = base_path.resolve(strict=True)
    found: dict[int, Path] = {}
    for child in sorted(root.iterdir(), key=lambda p: p.name):
        if not _VERSION_DIR.fullmatch(child.name) or not child.is_dir():
            continue
        if not child.resolve().is_relative_to(root):
            log.warning("Ignoring version directory %s of servable %s: it resolves outside the "
                        "base path %s", child, name, base_path)
            continue
        version = int(child.name)
        if version in found:
            # TF Serving's wording; like it, the name that sorts last wins.
            log.warning("Duplicate version directories detected. Version %d will be loaded "
                        "from %s, %s will be ignored.", version, child, found[version])
        found[version] = child
    return found


class ModelVersions(Generic[T]):
    """The versions of one model: their states, the loaded ones, and version labels.

    ``poll()`` (from the poller, or a config reload) is serialized by a lock; ``lookup()`` and
    ``statuses()`` may be called from any request thread. The map of serving versions is
    replaced, never mutated, so a request reads it without taking a lock and keeps its
    servable even if it is unloaded meanwhile (TF Serving's servable handles do the same).
    """

    def __init__(self, config: ModelConfig, loader: Callable[[Path], T]) -> None:
        self.config = config
        self.name = config.name
        self._loader = loader
        self._lock = threading.Lock()
        self._poll_lock = threading.Lock()  # the poller and a config reload may both poll
        self._states: dict[int, VersionStatus] = {}
        self._serving: dict[int, T] = {}
        # failed version -> identity of its directory then: retried only once replaced
        self._failed: dict[int, tuple[int, int]] = {}
        self._retired = False  # removed from the config: never load into it again
        self.labels: dict[str, int] = dict(config.labels)

    # ----------------------------------------------------------------- polling thread

    def reconfigure(self, config: ModelConfig) -> None:
        """Take a new policy, base path and labels (a reloaded model config)."""
        if config.name != self.name:
            raise ValueError(f"config for {config.name} given to model {self.name}")
        with self._poll_lock:
            self.config = config
            self.labels = dict(config.labels)  # replaced whole: readers never see a mix

    def available(self) -> set[int]:
        """The versions serving now (AVAILABLE)."""
        return set(self._serving)

    def poll(self) -> None:
        """Scan the base path once and load / unload versions to match the policy."""
        with self._poll_lock:
            self._poll()

    def _poll(self) -> None:
        if self._retired:  # the poller may still hold it from before a config reload
            return
        try:
            on_disk = scan_versions(self.config.base_path, self.name)
        except OSError as exc:
            # TF Serving leaves everything as it is when the base path is unreadable.
            log.error("FileSystemStoragePathSource encountered a filesystem access error: "
                      "Could not find base path %s for servable %s with error %s",
                      self.config.base_path, self.name, exc)
            return
        wanted = self.config.policy.select(on_disk)
        if self.config.policy.kind == "specific":
            for version in sorted(self.config.policy.versions - set(on_disk)):
                log.warning("Version %d of servable %s, which was requested to be served as a "
                            "'specific' version in the servable's version policy, was not found "
                            "in the file system", version, self.name)
        if not wanted:
            log.warning("No versions of servable %s found under base path %s. Did you forget to "
                        "name your leaf directory as a number (eg. '/1/')?",
                        self.name, self.config.base_path)
        for version in sorted(wanted):
            if version in self._serving:
                continue
            if self._failed.get(version) == _identity(on_disk[version]):
                continue  # the directory that failed, unchanged: wait until it changes
            self._load(version, on_disk[version])
        self._unload_unwanted(wanted)

    def _load(self, version: int, path: Path) -> None:
        sid = self._sid(version)
        # Taken before loading: a folder still being written (an export straight into the
        # version folder) may change while the load fails, and must then be retried.
        identity = _identity(path)
        self._set(VersionStatus(version, "LOADING"))
        log.info("Loading servable version %s from %s", sid, path)
        try:
            servable = self._loader(path)
        except Exception as exc:  # any load failure is the version's state, not a crash
            err = from_exception(exc, fallback="UNKNOWN")
            message = shorten(err.message, 2000)
            self._failed[version] = identity
            self._set(VersionStatus(version, "END", err.code, message))
            log.error("Loading servable: %s failed: %s: %s", sid, err.code, message)
            return
        with self._lock:
            self._serving = {**self._serving, version: servable}
            self._states[version] = VersionStatus(version, "AVAILABLE")
        self._failed.pop(version, None)
        log.info("Successfully loaded servable version %s", sid)

    def _unload_unwanted(self, wanted: set[int]) -> None:
        # AvailabilityPreservingPolicy: drop an unwanted version only if a wanted one serves,
        # if nothing is wanted any more, or if another unwanted one would still be serving.
        while True:
            unwanted = sorted(v for v in self._serving if v not in wanted)
            if not unwanted:
                return
            if wanted and not wanted & self._serving.keys() and len(unwanted) == 1:
                return
            self._unload(unwanted[0])

    def _unload(self, version: int) -> None:
        sid = self._sid(version)
        self._set(VersionStatus(version, "UNLOADING"))
        log.info("Unloading servable version %s", sid)
        with self._lock:
            self._serving = {v: s for v, s in self._serving.items() if v != version}
            self._states[version] = VersionStatus(version, "END")
        gc.collect()  # a loaded SavedModel holds reference cycles: free its memory now
        log.info("Done unloading servable version %s", sid)

    def unload_all(self) -> None:
        """Unload every version and stop loading new ones (the model leaves the config)."""
        with self._poll_lock:
            self._retired = True
            for version in sorted(self._serving):
                self._unload(version)

    def _set(self, status: VersionStatus) -> None:
        with self._lock:
            self._states[status.version] = status

    def _sid(self, version: int) -> str:
        return f"{{name: {self.name} version: {version}}}"

    # ----------------------------------------------------------------- request threads

    def resolve_label(self, label: str) -> int:
        """The version a label points at; an unknown label is INVALID_ARGUMENT, as in TF Serving."""
        try:
            return self.labels[label]
        except KeyError:
            raise invalid(f"Unrecognized servable version label: {label}") from None

    def lookup(self, version: int | None = None) -> tuple[int, T]:
        """The servable for ``version`` (None: the latest serving one), as TF Serving finds it."""
        serving = self._serving  # one snapshot: the map is replaced, never mutated
        if version is None:
            if not serving:
                raise not_found(f"Servable not found for request: Latest({self.name})")
            version = max(serving)
        servable = serving.get(version)
        if servable is None:
            raise not_found(f"Servable not found for request: Specific({self.name}, {version})")
        return version, servable

    def statuses(self, version: int | None = None) -> list[VersionStatus]:
        """Every known version's status, newest first, or just ``version``'s."""
        with self._lock:
            states = dict(self._states)
        if version is not None:
            if version not in states:
                raise not_found(f"Could not find version {version} of model {self.name}")
            return [states[version]]
        if not states:
            raise not_found(f"Could not find any versions of model {self.name}")
        return [states[v] for v in sorted(states, reverse=True)]


def _identity(path: Path) -> tuple[int, int]:
    """Inode and mtime: a directory replaced by a new one (copy, then rename) differs."""
    try:
        st = path.stat()
    except OSError:
        return (-1, -1)
    return (st.st_ino, st.st_mtime_ns)


class Poller:
    """Polls every model's base path every ``interval`` seconds on one daemon thread.

    ``models`` is called before each round, so models added by a config reload are polled.
    ``interval <= 0`` polls once (at start-up) and never again, like TF Serving.
    """

    def __init__(self, models: Callable[[], Iterable[ModelVersions[Any]]],
                 interval: float) -> None:
        self._models = models
        self._interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def poll_all(self) -> None:
        """Poll every model once, now, on the calling thread."""
        for model in list(self._models()):
            model.poll()

    def start(self) -> None:
        """Start polling in the background (nothing to do when the interval is 0)."""
        if self._interval > 0:
            self._thread = threading.Thread(target=self._run, name="forgekit-poller",
                                            daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self.poll_all()
            except Exception:  # keep polling: one bad cycle must not stop version updates
                log.exception("Polling the model base paths failed")

    def stop(self, timeout: float = 10.0) -> None:
        """Stop polling; waits up to ``timeout`` seconds for a poll in progress."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
