"""Run a snippet in a fresh Python process: the way a restarted kernel or a server sees a file.

A model that loads in the notebook that defined its classes proves nothing: the classes are
already registered in that process. :func:`run_fresh` starts a new interpreter (same
virtualenv, quiet CPU-only TensorFlow), runs the snippet, and reports what happened as an
:class:`~forgekit.outcome.Outcome`: the real exception type and first line, or the value the
snippet left in ``result``. :func:`run_steps` runs several snippets in one process (one
outcome each); :func:`run_fresh_many` runs independent jobs side by side, as many at a time as
free memory allows (:func:`affordable_workers`).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from forgekit.measure.memory import headroom_bytes
from forgekit.outcome import Outcome, first_line
from forgekit.quiet import child_env

DEFAULT_TIMEOUT = 120.0  # seconds; a TensorFlow import alone takes ~3 s on two cores
# Peak RSS of one fresh process that imports TensorFlow and loads a small model (measured
# 560-690 MiB on TF 2.21), rounded up: the unit of memory a worker reserves.
FRESH_PROCESS_MIB = 768
_MARK = "@@forgekit-fresh@@"

# The child reports one marked JSON line per step on stdout, so prints in the snippet are kept
# apart from the verdicts. Exceptions are caught in the child: a crash (segfault, OOM kill) is
# the only way to end without a verdict, and is reported as such.
_WRAPPER = """\
import contextlib, io, json, logging, time, warnings
warnings.simplefilter("ignore")
logging.getLogger("absl").setLevel(logging.ERROR)
namespace = {"__name__": "__fresh__"}
for name, code in STEPS:
    namespace.pop("result", None)
    buffer, started = io.StringIO(), time.perf_counter()
    try:
        with contextlib.redirect_stdout(buffer):
            exec(compile(code, f"<fresh process: {name}>", "exec"), namespace)
        verdict = {"ok": True, "result": namespace.get("result")}
    except Exception as exc:
        text = str(exc.args[0]) if isinstance(exc, KeyError) and exc.args else str(exc)
        verdict = {"ok": False, "error_type": type(exc).__name__, "message": text}
    verdict.update(name=name, stdout=buffer.getvalue(), seconds=time.perf_counter() - started)
    print(MARK + json.dumps(verdict, default=repr), flush=True)
"""


@dataclass(repr=False)
class FreshOutcome(Outcome):
    """An :class:`Outcome` from another process, with the code it ran and how long it took."""

    code: str = ""
    seconds: float = 0.0
    stdout: str = ""  # what the snippet printed; ``value`` is what it assigned to ``result``


def run_fresh(
    code: str,
    *,
    cwd: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float = DEFAULT_TIMEOUT,
) -> FreshOutcome:
    """Run ``code`` in a new Python interpreter and return what happened.

    The snippet sees nothing of the calling process: no imported module, no registered Keras
    class. It reports a value by assigning JSON-friendly data to ``result``. Any exception is
    captured in the child (type and first line); a crash or a timeout is an outcome too, never
    an exception here.

    Args:
        code: Python source; dedented, so an indented triple-quoted string is fine.
        cwd: working directory of the child (default: the caller's).
        env: extra environment variables for the child.
        timeout: seconds before the child is killed.
    """
    return run_steps({"main": code}, cwd=cwd, env=env, timeout=timeout)["main"]


def run_steps(
    steps: Mapping[str, str],
    *,
    cwd: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float = DEFAULT_TIMEOUT,
) -> dict[str, FreshOutcome]:
    """Run several snippets, in order, in ONE fresh interpreter sharing one namespace.

    Each step gets its own outcome (a failing step does not stop the next), so a process can
    show a failure and then what still works in that same state - without paying for another
    TensorFlow import. Use separate processes (:func:`run_fresh_many`) when a step would change
    what the next one sees (importing a module that registers Keras classes does).
    """
    codes = {name: textwrap.dedent(code).strip("\n") for name, code in steps.items()}
    program = f"STEPS = {list(codes.items())!r}\nMARK = {_MARK!r}\n{_WRAPPER}"
    started = time.perf_counter()
    outcomes = {name: FreshOutcome(code=code) for name, code in codes.items()}
    try:
        done = subprocess.run(
            [sys.executable, "-c", program],
            cwd=None if cwd is None else os.fspath(cwd),
            # each snippet imports keras or tf_keras explicitly: no legacy switch inherited
            env=child_env(env, unset=("TF_USE_LEGACY_KERAS",)),
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        for outcome in outcomes.values():
            outcome.ok, outcome.error_type = False, "TimeoutExpired"
            outcome.message = f"no answer within {timeout:g} s; the process was killed"
            outcome.seconds = time.perf_counter() - started
        return outcomes
    reported = set()
    for line in done.stdout.splitlines():
        if not line.startswith(_MARK):
            continue
        verdict = json.loads(line[len(_MARK):])
        outcome = outcomes[verdict["name"]]
        reported.add(verdict["name"])
        outcome.ok, outcome.stdout, outcome.seconds = (verdict["ok"], verdict["stdout"],
                                                       verdict["seconds"])
        if outcome.ok:
            outcome.value = verdict.get("result")
        else:
            outcome.error_type = verdict["error_type"]
            outcome.message = first_line(verdict["message"]) or verdict["error_type"]
    for name, outcome in outcomes.items():
        if name not in reported:  # the process died before this step reported
            tail = first_line("\n".join(done.stderr.strip().splitlines()[-1:]))
            outcome.ok, outcome.error_type = False, "ProcessCrashed"
            outcome.message = f"exit code {done.returncode}" + (f": {tail}" if tail else "")
    return outcomes


def affordable_workers(cap: int = 2, per_process_mib: int = FRESH_PROCESS_MIB) -> int:
    """How many fresh TensorFlow processes fit in free memory at once: 1 to ``cap``.

    The smaller of the container's cgroup headroom (Binder gives 2 GB in all, and the kernel
    already holds ~800 MiB of it) and the machine's available memory, divided by what one fresh
    process peaks at. Two suit a two-core machine with room to spare; Binder gets one.
    """
    free = headroom_bytes()
    if free is None:
        return 1
    return max(1, min(cap, free // (per_process_mib * 1024 * 1024)))


def run_fresh_many(
    jobs: Mapping[str, str | Mapping[str, str]],
    *,
    workers: int | None = None,
    cwd: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float = DEFAULT_TIMEOUT,
) -> dict[str, FreshOutcome]:
    """Run independent jobs, each in its own fresh process, ``workers`` at a time.

    A job is a snippet, or a mapping of step name -> snippet run by :func:`run_steps` in one
    process. Returns one outcome per snippet, keyed by job name (or by step name for a job
    with steps), in the order given. ``workers=None`` runs as many at a time as free memory
    allows (:func:`affordable_workers`): two on a two-core machine with room, one on Binder.
    """
    if workers is None:
        workers = affordable_workers()
    def run(job: str | Mapping[str, str], name: str) -> dict[str, FreshOutcome]:
        steps = {name: job} if isinstance(job, str) else job
        return run_steps(steps, cwd=cwd, env=env, timeout=timeout)

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        futures = [pool.submit(run, job, name) for name, job in jobs.items()]
        merged: dict[str, FreshOutcome] = {}
        for future in futures:
            merged.update(future.result())
    return merged


def load_snippet(load: str, *, setup: str = "", inputs: str | os.PathLike[str] | None = None,
                 reference: str | os.PathLike[str] | None = None,
                 predict: str = "model.predict(x, verbose=0)") -> str:
    """Code for a fresh process: ``setup``, then ``model = <load>``, then a prediction check.

    With ``inputs`` and ``reference`` (``.npy`` files saved by the calling process) the snippet
    reports ``result = max |predict - reference|``; otherwise the loaded object's type name.
    ``predict`` is the expression that turns ``model`` and ``x`` into an array.
    """
    lines = [setup] if setup else []
    lines.append(f"model = {load}")
    if inputs is not None and reference is not None:
        lines += [
            "import numpy as np",
            f"x = np.load({os.fspath(inputs)!r})",
            f"result = float(np.max(np.abs(np.asarray({predict}) - "
            f"np.load({os.fspath(reference)!r}))))",
        ]
    else:
        lines.append("result = type(model).__name__")
    return "\n".join(lines)
