"""A model's versions on disk and in memory: TF Serving's version lifecycle.

TF Serving watches a model's *base path*. Every subdirectory whose name is a number is a
version (``0002`` is version 2); anything else is ignored. A *version policy* picks the
versions to serve: ``latest`` (the newest ``num_versions``, default 1), ``all``, or
``specific``. Its manager then makes that so without ever dropping availability:

* a new version is loaded off the request path and becomes ``AVAILABLE`` only once loaded;
  until then the previous version keeps answering;
* a version whose load fails is retried ``max_num_load_retries`` times (default 5),
  ``load_retry_interval_micros`` apart (default one minute), reported ``LOADING`` meanwhile, as
  TF Serving's loader harness does; then it is ``END`` with its error and never loaded again
  while the policy keeps wanting it. Once it is no longer wanted (its folder removed, a newer
  version taking its place) a pending retry is cancelled, and a version that later comes back
  is loaded afresh. The version being served is left alone throughout (TF Serving's
  *availability preserving* policy);
* versions the policy no longer wants are unloaded (``END``, status OK) only once a wanted
  version is available, or when no version is wanted at all (every directory removed).

This module knows nothing of TensorFlow: the function that loads a version is passed in.
"""

from __future__ import annotations

import gc
import logging
import math
import os
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, Literal, TypeVar

from forgekit.formats.serving_base import is_version_name
from forgekit.serving.error_codes import from_exception, invalid, not_found, shorten

log = logging.getLogger("forgekit.serving")

T = TypeVar("T")


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
class LoadRetries:
    """TF Serving's ``--max_num_load_retries`` and ``--load_retry_interval_micros``."""

    max_retries: int = 5
    interval_s: float = 60.0  # negative: retry at once, as TF Serving's Retry() does


@dataclass
class _Retry:
    attempts: int  # failed attempts so far
    due: float  # time.monotonic() of the next attempt
    path: Path
    error: VersionStatus  # what END will say if no attempt succeeds


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
    # os.path.realpath, not Path.resolve: a symlink loop must be an OSError (ELOOP) like any
    # other unreadable base path, not the RuntimeError Path.resolve raises before Python 3.13.
    root = Path(os.path.realpath(base_path))
    os.stat(root)  # FileNotFoundError, PermissionError, ELOOP...
    found: dict[int, Path] = {}
    for child in sorted(root.iterdir(), key=lambda p: p.name):
        if not is_version_name(child.name) or not child.is_dir():
            continue
        if not Path(os.path.realpath(child)).is_relative_to(root):
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

    def __init__(self, config: ModelConfig, loader: Callable[[Path], T],
                 retries: LoadRetries | None = None) -> None:
        self.config = config
        self.name = config.name
        self._loader = loader
        self._retries = retries or LoadRetries()
        self._lock = threading.Lock()
        self._poll_lock = threading.Lock()  # the poller and a config reload may both poll
        self._states: dict[int, VersionStatus] = {}
        self._serving: dict[int, T] = {}
        self._retrying: dict[int, _Retry] = {}  # failed, another attempt scheduled
        self._failed: set[int] = set()  # gave up: not loaded again while still wanted
        self._wanted: set[int] = set()  # what the policy chose at the last scan
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
            if self._poll():
                gc.collect()  # a loaded SavedModel holds reference cycles: free them now

    def next_retry(self) -> float:
        """``time.monotonic()`` of the next scheduled load retry (``inf``: none)."""
        try:  # read without the poll lock, which a long load on another thread may hold
            return min((r.due for r in tuple(self._retrying.values())), default=math.inf)
        except RuntimeError:  # changed while read: look again now (retry_due takes the lock)
            return time.monotonic()

    def retry_due(self) -> None:
        """Re-attempt the failed loads whose retry is due, without scanning the base path.

        Retries belong to a version's load, not to polling: they happen even when the base
        path is scanned only once (``--file_system_poll_wait_seconds=0``), as in TF Serving.
        """
        with self._poll_lock:
            if self._retired:
                return
            now = time.monotonic()
            for version, retry in sorted(self._retrying.items()):
                if retry.due <= now:
                    self._load(version, retry.path)
            unloaded = self._unload_unwanted(self._wanted)
        if unloaded:
            gc.collect()

    def _poll(self) -> bool:
        """One scan; returns whether a version was unloaded."""
        if self._retired:  # the poller may still hold it from before a config reload
            return False
        try:
            on_disk = scan_versions(self.config.base_path, self.name)
        except OSError as exc:
            # TF Serving leaves everything as it is when the base path is unreadable.
            log.error("FileSystemStoragePathSource encountered a filesystem access error: "
                      "Could not find base path %s for servable %s with error %s",
                      self.config.base_path, self.name, exc)
            return False
        wanted = self._wanted = self.config.policy.select(on_disk)
        if self.config.policy.kind == "specific":
            for version in sorted(self.config.policy.versions - set(on_disk)):
                log.warning("Version %d of servable %s, which was requested to be served as a "
                            "'specific' version in the servable's version policy, was not found "
                            "in the file system", version, self.name)
        if not wanted:
            log.warning("No versions of servable %s found under base path %s. Did you forget to "
                        "name your leaf directory as a number (eg. '/1/')?",
                        self.name, self.config.base_path)
        # No longer wanted: a pending retry is cancelled (the version ends with its last
        # error) and a version that gave up is forgotten, so that it loads afresh if it
        # comes back (TF Serving's CancelLoadServableRetry / StopManagingServable).
        for version in sorted(set(self._retrying) - wanted):
            retry = self._retrying.pop(version)
            log.info("Retrying of Loading servable: %s was cancelled.", self._sid(version))
            self._set(retry.error)
        self._failed &= wanted
        now = time.monotonic()
        for version in sorted(wanted):
            if version in self._serving or version in self._failed:
                continue
            retry = self._retrying.get(version)
            if retry is not None and retry.due > now:
                continue
            self._load(version, on_disk[version])
        return self._unload_unwanted(wanted)

    def _load(self, version: int, path: Path) -> None:
        sid = self._sid(version)
        retry = self._retrying.get(version)
        if retry is None:
            self._set(VersionStatus(version, "LOADING"))
            log.info("Loading servable version %s from %s", sid, path)
        else:
            log.info("Retrying of Loading servable: %s retry: %d", sid, retry.attempts)
        try:
            servable = self._loader(path)
        except Exception as exc:  # any load failure is the version's state, not a crash
            self._load_failed(version, path, exc)
            return
        with self._lock:
            self._serving = {**self._serving, version: servable}
            self._states[version] = VersionStatus(version, "AVAILABLE")
        self._retrying.pop(version, None)
        log.info("Successfully loaded servable version %s", sid)

    def _load_failed(self, version: int, path: Path, exc: Exception) -> None:
        sid = self._sid(version)
        err = from_exception(exc, fallback="UNKNOWN")
        message = shorten(err.message, 2000)
        end = VersionStatus(version, "END", err.code, message)
        log.error("Loading servable: %s failed: %s: %s", sid, err.code, message)
        attempts = self._retrying[version].attempts + 1 if version in self._retrying else 1
        limit = self._retries.max_retries
        if attempts <= limit and not self._retired:
            # Still LOADING (status OK) until the last attempt fails, as TF Serving reports.
            self._retrying[version] = _Retry(
                attempts, time.monotonic() + max(self._retries.interval_s, 0.0), path, end)
            return
        if limit > 0:
            log.info("Retrying of Loading servable: %s exhausted max_num_load_retries: %d",
                     sid, limit)
        self._retrying.pop(version, None)
        self._failed.add(version)
        self._set(end)

    def _unload_unwanted(self, wanted: set[int]) -> bool:
        # AvailabilityPreservingPolicy: drop an unwanted version only if a wanted one serves,
        # if nothing is wanted any more, or if another unwanted one would still be serving.
        unloaded = False
        while True:
            unwanted = sorted(v for v in self._serving if v not in wanted)
            if not unwanted:
                return unloaded
            if wanted and not wanted & self._serving.keys() and len(unwanted) == 1:
                return unloaded
            self._unload(unwanted[0])
            unloaded = True

    def _unload(self, version: int) -> None:
        sid = self._sid(version)
        self._set(VersionStatus(version, "UNLOADING"))
        log.info("Unloading servable version %s", sid)
        with self._lock:
            self._serving = {v: s for v, s in self._serving.items() if v != version}
            self._states[version] = VersionStatus(version, "END")
        # No gc.collect() per version: the caller collects once per batch (one collection
        # costs a fraction of a second in a process holding TensorFlow; 500 models removed by
        # one reload took minutes when each version paid it).
        log.info("Done unloading servable version %s", sid)

    def unload_all(self, *, collect: bool = True) -> None:
        """Unload every version and stop loading new ones (the model leaves the config).

        ``collect=False`` leaves the garbage collection to the caller, who unloads several.
        """
        with self._poll_lock:
            self._retired = True
            self._retrying.clear()
            for version in sorted(self._serving):
                self._unload(version)
        if collect:
            gc.collect()

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


class Poller:
    """Polls every model's base path every ``interval`` seconds on one daemon thread.

    ``models`` is called before each round, so models added by a config reload are polled.
    ``interval <= 0`` polls once (at start-up) and never again, like TF Serving; scheduled load
    retries still run. One model's failure is logged and the round goes on with the next model.
    """

    def __init__(self, models: Callable[[], Iterable[ModelVersions[Any]]],
                 interval: float) -> None:
        self._models = models
        self._interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def poll_all(self) -> None:
        """Poll every model once, now, on the calling thread."""
        self._each(lambda model: model.poll())

    def _each(self, action: Callable[[ModelVersions[Any]], None]) -> None:
        for model in list(self._models()):
            if self._stop.is_set():  # shutting down: do not start another model's load
                return
            try:
                action(model)
            except Exception:  # one bad model must not starve those listed after it
                log.exception("Polling the base path of model %s failed", model.name)

    def start(self) -> None:
        """Start polling (and retrying failed loads) in the background."""
        self._thread = threading.Thread(target=self._run, name="forgekit-poller", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        next_poll = time.monotonic() + self._interval if self._interval > 0 else math.inf
        while True:
            now = time.monotonic()
            retry = min((m.next_retry() for m in list(self._models())), default=math.inf)
            # With nothing scheduled, look again within a second: a config reload may add a
            # model whose first load fails and schedules a retry.
            wake = min(next_poll, retry, now + 1.0)
            if self._stop.wait(max(wake - now, 0.0)):
                return
            now = time.monotonic()
            if now >= next_poll:
                self.poll_all()
                next_poll = time.monotonic() + self._interval
            elif retry <= now:
                self._each(lambda model: model.retry_due())

    def stop(self, timeout: float = 10.0) -> None:
        """Stop polling; waits up to ``timeout`` seconds for a poll in progress."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
