"""Execute course notebooks with papermill, timing each and measuring its kernel's peak memory.

Used by ``make run`` (``forgekit run``) and by the test suite, so a notebook that passes in CI is
executed exactly the way a learner's headless run executes it.

Each notebook runs in a short-lived worker process. The kernel is that worker's child, so once
papermill has shut the kernel down and reaped it, ``getrusage(RUSAGE_CHILDREN).ru_maxrss`` is the
exact high-water mark of the kernel (or of the largest process it started) - no sampling needed.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from forgekit.course.claims import (
    CLAIMS_FILE_ENV,
    NOTEBOOK_ENV,
    STRICT_ENV,
    read_claims,
    write_claims_json,
)
from forgekit.course.report import RunResult
from forgekit.course.site import write_site
from forgekit.exercises import SOLUTIONS_ENV
from forgekit.measure.memory import TreeSampler
from forgekit.quiet import child_env
from forgekit.table import Table

DEFAULT_TIMEOUT = 1800  # seconds for a whole notebook; CI parameters keep lessons far below


def ci_parameters(notebook: str | os.PathLike[str]) -> dict[str, Any]:
    """The small, fast parameters a notebook declares for CI in ``metadata.forgekit``."""
    meta = json.loads(Path(notebook).read_text(encoding="utf-8")).get("metadata", {})
    return dict(meta.get("forgekit", {}).get("ci_parameters", {}))


def discover(paths: Iterable[str | os.PathLike[str]]) -> list[Path]:
    """Notebooks named by ``paths`` (files, or folders searched one level), in course order."""
    found: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            found += sorted(q for q in p.glob("*.ipynb") if not q.name.startswith("."))
        elif p.suffix == ".ipynb" and p.is_file():
            found.append(p)
        else:
            raise FileNotFoundError(f"{p}: not a notebook or a folder of notebooks")
    return found


def run_notebook(notebook: str | os.PathLike[str], output: str | os.PathLike[str],
                 parameters: dict[str, Any] | None = None,
                 timeout: float = DEFAULT_TIMEOUT, strict_claims: bool = False) -> RunResult:
    """Execute ``notebook`` into ``output`` with papermill and return what happened.

    The working directory is the notebook's folder (as in JupyterLab). TensorFlow in the kernel
    is quiet and CPU-only. Never raises for a failing notebook: the result says which cell failed.
    Solution cells (``%%solution``) are executed, so every checker is proven on its answer.
    The claims the notebook checks (:mod:`forgekit.course.claims`) are collected into the result;
    ``strict_claims`` makes an unmet claim fail its cell (the test suite's mode).
    """
    notebook, output = Path(notebook).resolve(), Path(output).resolve()
    output.parent.mkdir(parents=True, exist_ok=True)
    claims_file = output.with_suffix(".claims.jsonl")
    claims_file.unlink(missing_ok=True)
    job = {"notebook": str(notebook), "output": str(output), "parameters": parameters or {}}
    env = child_env({CLAIMS_FILE_ENV: str(claims_file), NOTEBOOK_ENV: notebook.stem,
                     STRICT_ENV: "1" if strict_claims else "0", SOLUTIONS_ENV: "1"})
    started = time.perf_counter()
    # A new session so a timeout can kill the worker *and* its kernel in one signal.
    proc = subprocess.Popen([sys.executable, "-m", "forgekit.course.runner", "--worker", json.dumps(job)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            start_new_session=True)
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        return RunResult(notebook.name, "failed", round(time.perf_counter() - started, 1), None,
                         f"timed out after {timeout:.0f} s", str(output))
    lines = stdout.strip().splitlines()
    try:
        row = json.loads(lines[-1])
    except (IndexError, json.JSONDecodeError):
        tail = "\n".join(stderr.strip().splitlines()[-5:])
        return RunResult(notebook.name, "failed", round(time.perf_counter() - started, 1), None,
                         f"runner crashed (exit {proc.returncode}): {tail}", str(output))
    return RunResult(**row, claims=read_claims(claims_file))


def _describe_failure(output: Path, exc: Any) -> str:
    """Name the failing cell by its position in the *source* notebook and its first line."""
    import logging

    import nbformat

    index = getattr(exc, "cell_index", None)
    where = "a cell"
    try:
        cells = nbformat.read(output, as_version=4).cells
        if index is not None:
            injected = sum(1 for c in cells[:index]
                           if "injected-parameters" in c.get("metadata", {}).get("tags", []))
            first = next((ln.strip() for ln in cells[index].source.splitlines() if ln.strip()), "")
            where = f"cell {index - injected} ({first[:60]!r})"
    except (OSError, ValueError, IndexError, KeyError):  # no, or a half-written, output notebook
        pass  # it is best-effort context; the error itself matters
    except Exception:
        logging.getLogger(__name__).warning("cannot name the failing cell from %s", output,
                                            exc_info=True)
    ename = getattr(exc, "ename", type(exc).__name__)
    evalue = str(getattr(exc, "evalue", exc)).strip().splitlines()
    return f"{where}: {ename}: {evalue[0] if evalue else ''}".rstrip(": ")


def _worker(job: dict[str, Any]) -> dict[str, Any]:
    import resource

    import papermill as pm

    notebook, output = Path(job["notebook"]), Path(job["output"])
    failed_cell = None
    started = time.perf_counter()
    with TreeSampler() as tree:
        try:
            pm.execute_notebook(str(notebook), str(output), parameters=job["parameters"],
                                kernel_name="python3", cwd=str(notebook.parent),
                                progress_bar=False, log_output=False)
        except Exception as exc:  # papermill raises PapermillExecutionError for a failing cell
            failed_cell = _describe_failure(output, exc)
    seconds = time.perf_counter() - started
    peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # KiB on Linux
    return {"notebook": notebook.name, "status": "failed" if failed_cell else "ok",
            "seconds": round(seconds, 1), "peak_rss_mb": round(peak_kb / 1024, 1),
            "failed_cell": failed_cell, "output": str(output),
            "peak_tree_rss_mb": tree.peaks.tree_rss_mb, "peak_tree_pss_mb": tree.peaks.tree_pss_mb,
            "peak_tree_anon_mb": tree.peaks.tree_anon_mb,
            "peak_largest_anon_mb": tree.peaks.largest_anon_mb,
            "cgroup_peak_mb": tree.peaks.cgroup_mb, "cgroup_limit_mb": tree.peaks.cgroup_limit_mb}


def summary_table(results: Sequence[RunResult]) -> str:
    """A fixed-width table: notebook, status, seconds, memory peaks (the largest process's RSS,
    the process tree's anonymous memory, PSS and RSS, the cgroup when limited), claims; failures and claims that do not
    hold listed below it."""
    cgroup = any(r.cgroup_peak_mb is not None for r in results)
    table = Table(["notebook", "status", "seconds", "peak RSS (MiB)", "tree anon (MiB)",
                   "tree PSS (MiB)", "tree RSS (MiB)", *(["cgroup (MiB)"] if cgroup else []), "claims"],
                  max_width=200)
    for r in results:
        failed = sum(1 for c in r.claims if not c.get("holds"))
        table.add(r.notebook, r.status, f"{r.seconds:.1f}", _mib(r.peak_rss_mb),
                  _mib(r.peak_tree_anon_mb), _mib(r.peak_tree_pss_mb), _mib(r.peak_tree_rss_mb),
                  *([_mib(r.cgroup_peak_mb)] if cgroup else []),
                  f"{len(r.claims)}" + (f" ({failed} ✗)" if failed else ""))
    limits = {r.cgroup_limit_mb for r in results if r.cgroup_limit_mb}
    if limits:
        table.notes.append("cgroup: the memory cgroup's charge (page cache included) under its "
                           f"limit of {max(limits):.0f} MiB")
    for r in results:
        if not r.ok:
            table.notes.append(f"FAILED {r.notebook}: {r.failed_cell}")
        table.notes += [f"CLAIM DOES NOT HOLD {r.notebook}: {c.get('text')}"
                        for c in r.claims if not c.get("holds")]
    return str(table)


def _mib(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def run_course(paths: Sequence[str | os.PathLike[str]], out: str | os.PathLike[str] = "build",
               ci: bool = False, parameters: dict[str, Any] | None = None,
               timeout: float = DEFAULT_TIMEOUT) -> list[RunResult]:
    """Execute notebooks in order into ``out/executed``, write the report and ``out/site``.

    ``ci=True`` injects each notebook's CI parameters (and keeps its artifacts under ``out``).
    """
    out = Path(out)
    executed, site = out / "executed", out / "site"
    site.mkdir(parents=True, exist_ok=True)
    results = []
    for nb in discover(paths):
        params = dict(parameters or {})
        if ci:
            params = {**ci_parameters(nb), "output_dir": str((out / "artifacts" / nb.stem)
                                                             .resolve()), **params}
        result = run_notebook(nb, executed / nb.name, params, timeout=timeout)
        print(f"{'ok    ' if result.ok else 'FAILED'} {nb.name}  {result.seconds:.1f} s",
              flush=True)
        results.append(result)
    claims = [c for r in results for c in r.claims]
    write_claims_json(claims, out / "claims.json")
    # Lesson pages linked to each other, index.html, claims.html, report.html with the numbers.
    write_site(site, results, claims)
    (out / "report.json").write_text(json.dumps([r.as_report() for r in results], indent=2) + "\n",
                                     encoding="utf-8")
    return results


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--worker":
        print(json.dumps(_worker(json.loads(sys.argv[2]))))
    else:
        sys.exit("usage: forgekit run NOTEBOOK_OR_FOLDER ... (this module's CLI is internal)")
