"""What every explorer shares: a checked work folder, a progress line, the static fallback,
and a registry that closes explorers (and their servers) at kernel exit."""

from __future__ import annotations

import atexit
import contextlib
import html
import io
import os
import tempfile
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from forgekit.errors import ForgekitError
from forgekit.paths import MARKER, NotOursError, claim_dir, is_claimed, remove_claimed

FALLBACK = ("Interactive explorer — run this notebook in JupyterLab or on Binder to use it "
            "(a static page cannot run widgets).")
# Strong references on purpose: an explorer whose server still runs must be found at exit (or by
# the next explorer) even if the notebook dropped its variable.
_OPEN: list[Explorer] = []


class WidgetError(ForgekitError):
    """An explorer was given something it cannot use; the message names it and the fix."""


def writable_dir(path: str | os.PathLike[str]) -> Path:
    """``path`` as a folder this process can write to (created if missing), else WidgetError."""
    folder = Path(path)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".forgekit-write-test-"):
            pass  # a fresh name: a user's file is never overwritten or removed
    except OSError as exc:
        raise WidgetError(f"cannot write there ({type(exc).__name__}: {exc.strerror or exc})",
                          path=folder, found="a path this process cannot write to",
                          expected="a writable folder for the explorer's files",
                          fix="pass a folder you own, e.g. forgekit.paths.output_dir("
                              "'../artifacts/10_explorer_and_claims') / 'explorer'") from None
    return folder


def choose(value: str, choices: dict[str, Any], what: str, call: str) -> str:
    """The key of ``choices`` named by ``value`` (a key, or a label in ``choices``' values)."""
    if value in choices:
        return value
    for key, item in choices.items():
        if value == getattr(item, "label", item if isinstance(item, str) else None):
            return key
    raise WidgetError(f"unknown {what} {value!r}", found=repr(value),
                      expected=" | ".join(choices),
                      fix=f"{call}({next(iter(choices))!r}, ...)  # one of the names above")


def figure_png(fig: Any) -> bytes:
    """A matplotlib Figure as PNG bytes (for an ``ipywidgets.Image``: no pyplot state kept)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    return buffer.getvalue()


def error_html(exc: BaseException) -> str:
    """An exception shown whole (type and full message), for an explorer's output area."""
    text = f"{type(exc).__name__}: {exc}"
    if not isinstance(exc, ForgekitError):  # unexpected: show where it came from too
        text += "\n\n" + "".join(traceback.format_exception(exc)[-4:])
    return (f'<pre style="white-space:pre-wrap;color:#b42318">{html.escape(text)}</pre>')


class Explorer:
    """Base of the explorers: ``workdir`` checked, ``.ui`` built on first use, ``close()``."""

    title = "explorer"
    # The sub-folder of workdir this explorer writes: created and marked by it (or adopted
    # empty, or left by an explorer before), removed by close(); any other folder there is
    # refused, never written into or deleted (forgekit.paths' deletion rule).
    folder = "explorer"

    def __init__(self, workdir: str | os.PathLike[str]) -> None:
        # Subclasses check their own arguments BEFORE calling this: it replaces (closes) the
        # explorer it supersedes, so a bad argument must fail while that one is still open.
        self.workdir = writable_dir(workdir)
        self.root = self.workdir / self.folder
        if self.root.exists() and not is_claimed(self.root) and (
                not self.root.is_dir() or any(self.root.iterdir())):
            raise WidgetError(
                "this explorer's folder exists and forgekit did not create it (no "
                f"{MARKER} file): it would be written into and removed at close",
                path=self.root, found="a folder (or file) of someone else's",
                expected=f"no {self.folder}/ under the work folder, or an empty one",
                fix=f"pass another work folder, e.g. {type(self).__name__}("
                    f"{os.fspath(self.workdir / 'explorer')!r})")
        self.status_text = "ready"
        self.closed = False
        self._ui: Any = None
        self._progress: Any = None
        self._status: Any = None
        for other in [e for e in _OPEN if self._replaces(e)]:
            other.close()
        try:
            claim_dir(self.root)
        except NotOursError as exc:  # appeared since the check above
            raise WidgetError(str(exc), path=self.root, fix="pass another work folder") from None
        _OPEN.append(self)

    def _replaces(self, other: Explorer) -> bool:
        """A re-run cell replaces its explorer: two never share a folder."""
        return other.root.resolve() == self.root.resolve()

    @contextlib.contextmanager
    def _starting(self) -> Iterator[None]:
        """Wrap a constructor's work after registration (a server, a writer process): if it
        fails, this half-built explorer is closed (unregistered, its folder removed)."""
        try:
            yield
        except BaseException:
            self.close()
            raise

    # ------------------------------------------------------------------ progress

    def _step(self, done: int, total: int, text: str) -> None:
        """Report progress: kept in :attr:`status_text`, shown live when the UI exists."""
        self.status_text = text
        if self._progress is not None:
            self._progress.max = max(total, 1)
            self._progress.value = min(done, total)
            self._progress.bar_style = "success" if done >= total else "info"
        if self._status is not None:
            self._status.value = text

    def _status_widgets(self) -> list[Any]:
        import ipywidgets as w

        self._progress = w.IntProgress(value=0, min=0, max=1, layout=w.Layout(width="160px"))
        self._status = w.Label(self.status_text)
        return [self._progress, self._status]

    def _run_safely(self, action: Callable[[], Any], show: Callable[[Any], None],
                    fail: Callable[[str], None]) -> None:
        """Run a button's action; show its result, or its error whole instead of a traceback
        in the kernel log (a widget callback's exception is otherwise invisible)."""
        try:
            result = action()
        except Exception as exc:
            self._step(0, 1, f"failed: {type(exc).__name__}")
            fail(error_html(exc))
            return
        show(result)

    # ------------------------------------------------------------------ display

    @property
    def ui(self) -> Any:
        """The ipywidgets view (built on first access)."""
        if self._ui is None:
            self._ui = self._build_ui()
        return self._ui

    def _build_ui(self) -> Any:
        raise NotImplementedError

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        """The live widget for Jupyter, and a static note for anything that cannot run it."""
        bundle = dict(self.ui._repr_mimebundle_(include=include, exclude=exclude) or {})
        bundle["text/plain"] = f"{self.title}. {FALLBACK}"
        bundle["text/html"] = (
            '<div class="forgekit-widget-fallback" style="border:1px dashed #888;'
            f'padding:8px"><b>{html.escape(self.title)}</b><br>{html.escape(FALLBACK)}</div>')
        return bundle

    # ------------------------------------------------------------------ cleanup

    def close(self) -> None:
        """Remove the files this explorer wrote (its folder under ``workdir``). Idempotent."""
        if self.closed:
            return
        self.closed = True
        if self in _OPEN:
            _OPEN.remove(self)
        try:
            self._release()
        finally:  # the files go even when stopping what the explorer holds failed
            remove_claimed(self.root)  # only a folder it created and marked
            if self._ui is not None:
                _disable(self._ui)
            self._step(0, 1, "closed: files removed")

    def _release(self) -> None:
        """Subclasses free what they hold (a server) before the files go."""

    def __enter__(self) -> Explorer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()



def _disable(widget: Any) -> None:
    """Disable every control of a closed explorer's view (its files and server are gone)."""
    if hasattr(widget, "disabled"):
        widget.disabled = True
    for child in getattr(widget, "children", ()):
        _disable(child)


def close_all() -> None:
    """Close every open explorer (registered at exit: no server outlives the kernel).

    One that fails to release what it holds does not stop the others from closing; the
    failures are raised together afterwards.
    """
    failed: list[str] = []
    for explorer in list(_OPEN):
        try:
            explorer.close()
        except Exception as exc:
            failed.append(f"{explorer.title} at {explorer.root}: {type(exc).__name__}: {exc}")
    if failed:
        raise WidgetError("some explorers did not close cleanly (their folders are removed)",
                          found="; ".join(failed), expected="every explorer closed",
                          fix="restart the kernel if a server still answers")


atexit.register(close_all)
