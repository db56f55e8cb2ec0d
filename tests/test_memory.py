"""forgekit.measure.memory: PSS counts a shared page once, and the cgroup reader finds the
group a process is really in (v1 and v2), limited or not."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from forgekit.measure import memory

MIB = 2**20

# A parent touches 160 MiB, then forks a child that only sleeps: both map the same pages.
_SHARED = textwrap.dedent("""
    import json, os, sys, time
    sys.path.insert(0, {root!r})
    from forgekit.measure.memory import pss_bytes
    block = bytearray(160 * 2**20)
    for i in range(0, len(block), 4096):
        block[i] = 1
    child = os.fork()
    if child == 0:
        time.sleep(30)
        os._exit(0)
    time.sleep(0.5)
    def rss(pid):
        with open(f"/proc/{{pid}}/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    print(json.dumps({{"pss": [pss_bytes(os.getpid()), pss_bytes(child)],
                      "rss": [rss(os.getpid()), rss(child)]}}))
    os.kill(child, 9)
""")


@pytest.mark.skipif(not os.path.exists("/proc/self/smaps_rollup"), reason="needs Linux procfs")
def test_pss_counts_a_page_two_processes_share_once():
    from tests.conftest import ROOT

    done = subprocess.run([sys.executable, "-c", _SHARED.format(root=str(ROOT))],
                          capture_output=True, text=True, timeout=60, check=True)
    seen = json.loads(done.stdout)
    pss, rss = sum(seen["pss"]), sum(seen["rss"])
    # RSS counts the 160 MiB in each process; PSS splits it between them.
    assert rss >= 2 * 150 * MIB, seen
    assert 150 * MIB <= pss <= 0.75 * rss, seen


def test_pss_of_a_process_that_is_gone_is_none():
    assert memory.pss_bytes(2**22 + 12345) is None
    mine = memory.pss_bytes(os.getpid())
    assert mine is None or mine > 0


def _fake(tmp_path, cgroup_line, files):
    proc, root = tmp_path / "proc", tmp_path / "cgroup"
    (proc / "42").mkdir(parents=True)
    (proc / "42" / "cgroup").write_text(cgroup_line)
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return memory.memory_cgroup(42, root=root, proc=proc)


def test_cgroup_v1_is_the_process_own_group_not_the_top(tmp_path):
    group = _fake(tmp_path, "5:cpu:/\n4:memory:/pods/binder\n0::/\n", {
        "memory/memory.usage_in_bytes": "999999999", "memory/memory.limit_in_bytes": "9223372036854771712",
        "memory/pods/binder/memory.usage_in_bytes": str(800 * MIB),
        "memory/pods/binder/memory.limit_in_bytes": str(2048 * MIB),
        "memory/pods/binder/memory.max_usage_in_bytes": str(1500 * MIB)})
    assert group is not None and group.version == 1 and group.path.name == "binder"
    assert (group.limit, group.current(), group.peak()) == (2048 * MIB, 800 * MIB, 1500 * MIB)


def test_cgroup_v2_unlimited_and_limited(tmp_path):
    group = _fake(tmp_path, "0::/user.slice\n", {
        "user.slice/memory.current": str(300 * MIB), "user.slice/memory.max": "max"})
    assert group is not None and group.version == 2
    assert group.limit is None and group.current() == 300 * MIB and group.peak() is None
    limited = _fake(tmp_path / "b", "0::/pod\n", {
        "pod/memory.current": "5", "pod/memory.max": str(2 * 1024 * MIB), "pod/memory.peak": "7"})
    assert limited.limit == 2048 * MIB and limited.peak() == 7


def test_no_memory_controller_is_none(tmp_path):
    assert _fake(tmp_path, "1:cpu:/\n", {}) is None
    assert memory.memory_cgroup(42, root=tmp_path, proc=tmp_path / "nowhere") is None


@pytest.mark.skipif(not os.path.exists("/proc/self/smaps_rollup"), reason="needs Linux procfs")
def _peaks_with_child(code: str) -> memory.TreePeaks:
    """One sample of this process's tree while a child running ``code`` (which prints 'ready'
    when its memory is in place) is alive."""
    child = subprocess.Popen([sys.executable, "-c", code + "\nprint('ready', flush=True)\n"
                              "import time; time.sleep(60)"], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "ready"
        sampler = memory.TreeSampler()
        sampler.sample()
    finally:
        child.kill()
        child.wait()
    return sampler.peaks


def test_tree_sampler_sees_a_child_memory_by_pss_and_rss():
    peaks = _peaks_with_child("b = bytearray(120 * 2**20)\n"
                              "for i in range(0, len(b), 4096): b[i] = 1")
    assert peaks.tree_pss_mb is not None and peaks.tree_pss_mb >= 110, peaks
    assert peaks.tree_rss_mb >= peaks.tree_pss_mb - 1, peaks
    # The child's bytearray is anonymous memory: counted in full whatever else runs.
    assert peaks.tree_anon_mb >= 110 and peaks.largest_anon_mb >= 110, peaks


@pytest.mark.slow
@pytest.mark.skipif(not os.path.exists("/proc/self/smaps_rollup"), reason="needs Linux procfs")
def test_a_tensorflow_process_adds_enough_anonymous_memory_for_the_lesson_bounds_to_see():
    """tests/test_notebooks.py bounds each lesson at its peak + 25 %: that only catches a second
    TensorFlow process if one adds more than a quarter of the smallest lesson's figure."""
    from tests.test_notebooks import TREE_ANON_PEAK_MB

    peaks = _peaks_with_child("import tensorflow as tf\ntf.constant(1.0) + 1")
    assert peaks.tree_anon_mb > 0.25 * min(TREE_ANON_PEAK_MB.values()), peaks
