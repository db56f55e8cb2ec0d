"""forgekit.quiet: muting fd 2 from several threads at once, and GPUs hidden only on request."""

from __future__ import annotations

import os
import threading
import warnings

import pytest

from forgekit import quiet


def _target(fd: int) -> tuple[int, int]:
    st = os.fstat(fd)
    return st.st_dev, st.st_ino


def test_overlapping_muted_stderr_from_two_threads_restores_fd_2():
    """A enters, B enters, A leaves (fd 2 must stay muted for B), B leaves (fd 2 must be what it
    was before A). One swap per block restored the wrong fd and left fd 2 on /dev/null."""
    null = os.open(os.devnull, os.O_WRONLY)
    original, devnull = _target(2), _target(null)
    os.close(null)
    a_in, b_in, a_out, b_go = (threading.Event() for _ in range(4))
    seen: dict[str, tuple[int, int]] = {}

    def a():
        with quiet.muted_stderr():
            a_in.set()
            b_in.wait(10)
        a_out.set()

    def b():
        a_in.wait(10)
        with quiet.muted_stderr():
            b_in.set()
            a_out.wait(10)
            seen["after A left"] = _target(2)
            b_go.wait(10)

    threads = [threading.Thread(target=a), threading.Thread(target=b)]
    for t in threads:
        t.start()
    a_out.wait(10)
    b_go.set()
    for t in threads:
        t.join(10)
    assert seen["after A left"] == devnull  # still muted while B is inside
    assert _target(2) == original  # and exactly the original fd 2 afterwards
    with quiet.muted_stderr(), quiet.muted_stderr():  # nested in one thread
        assert _target(2) == devnull
    assert _target(2) == original


def test_quiet_tf_hides_gpus_only_when_asked(monkeypatch):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert "CUDA_VISIBLE_DEVICES" not in quiet.QUIET_ENV
    assert "CUDA_VISIBLE_DEVICES" not in quiet.child_env()
    quiet.quiet_tf(import_tf=False)
    assert "CUDA_VISIBLE_DEVICES" not in os.environ  # a learner's GPU stays visible
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "too late" when TensorFlow is already imported
        quiet.quiet_tf(import_tf=False, cpu_only=True)
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "-1"
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")  # a choice already made wins
    quiet.quiet_tf(import_tf=False, cpu_only=True)
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "0"


@pytest.fixture(autouse=True)
def _absl_level_restored():
    import logging

    logger = logging.getLogger("absl")
    level = logger.level
    yield
    logger.setLevel(level)
