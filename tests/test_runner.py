"""The notebook runner: failures are named by notebook and cell; reports have the agreed keys."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from forgekit.course.runner import (
    ci_parameters,
    discover,
    run_course,
    run_notebook,
    summary_table,
)
from forgekit.course.site_pages import render_lesson


def _write(path, *sources, ci=None):
    cells = [new_markdown_cell("# tiny")]
    cells.append(new_code_cell("value = 1", metadata={"tags": ["parameters"]}))
    cells += [new_code_cell(src) for src in sources]
    nb = new_notebook(cells=cells, metadata={
        "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}})
    if ci is not None:
        nb.metadata["forgekit"] = {"ci_parameters": ci}
    nbformat.write(nb, path)
    return path


def test_failing_cell_is_named_with_its_source_position(tmp_path):
    nb = _write(tmp_path / "boom.ipynb", "x = value + 1", "raise ZeroDivisionError('on purpose')")
    result = run_notebook(nb, tmp_path / "out" / "boom.ipynb", {"value": 2})
    assert result.status == "failed"
    # cell 3 of the source notebook (0: markdown, 1: parameters, 2: x = ..., 3: raise)
    assert result.failed_cell.startswith("cell 3 ")
    assert "ZeroDivisionError: on purpose" in result.failed_cell
    assert (tmp_path / "out" / "boom.ipynb").exists(), "the partial output is kept for reading"


def test_parameters_are_injected_and_peak_rss_measured(tmp_path):
    nb = _write(tmp_path / "ok.ipynb", "assert value == 41, value",
                "blob = bytearray(200 * 2**20)  # touch 200 MB so the peak shows it",
                "blob[::4096] = b'x' * len(blob[::4096])")
    result = run_notebook(nb, tmp_path / "ok.out.ipynb", {"value": 41})
    assert result.ok, result.failed_cell
    assert result.peak_rss_mb > 200, result.peak_rss_mb


def test_run_course_writes_report_site_and_exits_failed(tmp_path, capsys):
    folder = tmp_path / "nbs"
    folder.mkdir()
    _write(folder / "a_ok.ipynb", "pass", ci={"value": 3})
    _write(folder / "b_bad.ipynb", "assert value == 0, 'value was injected'", ci={"value": 3})
    results = run_course([folder], out=tmp_path / "build", ci=True)
    report = json.loads((tmp_path / "build" / "report.json").read_text())
    assert [row["notebook"] for row in report] == ["a_ok.ipynb", "b_bad.ipynb"]
    assert set(report[0]) == {"notebook", "status", "seconds", "peak_rss_mb", "failed_cell",
                              "peak_tree_rss_mb", "peak_tree_pss_mb", "peak_tree_anon_mb",
                              "peak_largest_anon_mb",
                              "cgroup_peak_mb", "cgroup_limit_mb", "claims", "claims_failed"}
    # The kernel is a child of the run: its memory is seen by PSS (on Linux) as well as RSS.
    if Path("/proc/self/smaps_rollup").exists():
        assert report[0]["peak_tree_anon_mb"] > 20 and report[0]["peak_largest_anon_mb"] > 20
        assert report[0]["peak_tree_anon_mb"] <= report[0]["peak_tree_pss_mb"] + 1
        assert report[0]["peak_tree_pss_mb"] <= report[0]["peak_tree_rss_mb"] + 1
    assert report[0]["status"] == "ok" and report[0]["failed_cell"] is None
    assert report[1]["status"] == "failed" and "value was injected" in report[1]["failed_cell"]
    assert (tmp_path / "build" / "site" / "index.html").exists()
    assert (tmp_path / "build" / "site" / "a_ok.html").exists()
    assert "FAILED b_bad.ipynb" in summary_table(results)


def test_cli_run_exit_code(tmp_path):
    from forgekit.cli import main

    _write(tmp_path / "bad.ipynb", "1 / 0")
    assert main(["run", str(tmp_path / "bad.ipynb"), "--out", str(tmp_path / "b")]) == 1


def test_ci_parameters_and_discover(tmp_path):
    _write(tmp_path / "n1.ipynb", ci={"value": 5})
    _write(tmp_path / "n0.ipynb")
    assert ci_parameters(tmp_path / "n1.ipynb") == {"value": 5}
    assert ci_parameters(tmp_path / "n0.ipynb") == {}
    assert [p.name for p in discover([tmp_path])] == ["n0.ipynb", "n1.ipynb"]
    with pytest.raises(FileNotFoundError):
        discover([tmp_path / "missing.ipynb"])


def test_tree_rss_sums_processes_the_kernel_starts(tmp_path):
    # The kernel starts a child that holds 300 MB: the largest single process is the kernel or
    # the child, but the sum over the tree must count both (Binder's limit is on the sum).
    nb = _write(tmp_path / "tree.ipynb", "x = 1",
                "import subprocess, sys, time\n"
                "child = subprocess.Popen([sys.executable, '-c', "
                "'b = bytearray(300 * 2**20); b[::4096] = bytes(len(b[::4096])); "
                "import time; time.sleep(3)'])\n"
                "time.sleep(2.5)\nchild.wait()")
    result = run_notebook(nb, tmp_path / "tree.out.ipynb")
    assert result.ok, result.failed_cell
    assert result.peak_tree_rss_mb > result.peak_rss_mb > 300, (result.peak_tree_rss_mb,
                                                               result.peak_rss_mb)


def test_claims_are_collected_and_strict_mode_fails_the_cell(tmp_path):
    cells = ("from forgekit import claim",
             "claim('two is more than one', 2 > 1, evidence={'a': 2, 'b': 1})",
             "claim('one is more than two', 1 > 2, evidence={'a': 1})",
             "after = True")
    nb = _write(tmp_path / "claims.ipynb", *cells)
    lenient = run_notebook(nb, tmp_path / "lenient.ipynb")
    assert lenient.ok, "a learner's run is not stopped by an unmet claim"
    assert [(c["text"], c["holds"], c["notebook"]) for c in lenient.claims] == [
        ("two is more than one", True, "claims"), ("one is more than two", False, "claims")]
    assert lenient.claims[0]["evidence"] == {"a": 2, "b": 1}
    strict = run_notebook(nb, tmp_path / "strict.ipynb", strict_claims=True)
    assert not strict.ok
    assert "ClaimError" in strict.failed_cell and "one is more than two" in strict.failed_cell


def test_solution_cells_run_under_the_runner_and_render_collapsed(tmp_path):
    nb = _write(tmp_path / "sol.ipynb", "%load_ext forgekit.exercises", "answer = None",
                "%%solution\nanswer = 42\nprint('SOLVED', answer)")
    book = nbformat.read(nb, as_version=4)
    book.cells[-1].metadata["jupyter"] = {"source_hidden": True}
    nbformat.write(book, nb)
    result = run_notebook(nb, tmp_path / "sol.out.ipynb")
    assert result.ok, result.failed_cell
    executed = nbformat.read(tmp_path / "sol.out.ipynb", as_version=4)
    assert "SOLVED 42" in str(executed.cells[-1].outputs)
    page = render_lesson(tmp_path / "sol.out.ipynb", tmp_path).read_text()
    assert "<details><summary>Solution" in page and "SOLVED 42" not in page.replace(
        "print(&#x27;SOLVED&#x27;, answer)", "")


def test_solution_magic_skips_for_a_learner(monkeypatch, capsys):
    from forgekit.exercises import solution

    monkeypatch.delenv("FORGEKIT_RUN_SOLUTIONS", raising=False)
    ns: dict = {}
    assert solution("", "x = 1", ns) is False and "x" not in ns
    assert "Solution not run" in capsys.readouterr().out
    assert solution("run", "x = 1", ns) is True and ns["x"] == 1
    monkeypatch.setenv("FORGEKIT_RUN_SOLUTIONS", "1")
    with pytest.raises(ZeroDivisionError):
        solution("", "1 / 0", ns)


def test_a_fork_before_exec_is_not_counted_as_a_second_copy_of_its_parent():
    """Between fork and exec a child shares its parent's pages; its RSS would count them again."""
    import os
    import signal
    import time

    import psutil

    from forgekit.measure.memory import _added_rss

    ballast = bytearray(os.urandom(1)) * (256 * 2**20)  # 256 MiB the parent really holds
    pid = os.fork()
    if pid == 0:  # the child: the parent's program, never exec'd
        time.sleep(30)
        os._exit(0)
    try:
        child = psutil.Process(pid)
        time.sleep(0.2)
        assert child.memory_info().rss > 200 * 2**20, "the fork shows the parent's pages as RSS"
        assert _added_rss(child) < 64 * 2**20, "but adds only its private pages to the tree"
        own = psutil.Process()
        assert _added_rss(own) == own.memory_info().rss, "a process of its own counts whole"
    finally:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        del ballast
