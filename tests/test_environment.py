"""forgekit.doctor(): the report and every known-bad-combination rule."""

from __future__ import annotations

from forgekit.diagnose.environment import environment_report, known_problems

GOOD = {"tensorflow": "2.21.0", "keras": "3.15.1", "tf-keras": "2.21.0", "h5py": "3.14.0",
        "numpy": "2.4.6"}


def test_pinned_combination_is_clean():
    for python in ((3, 11), (3, 12), (3, 13)):
        assert known_problems(GOOD, env={}, python=python) == []
    previous = {**GOOD, "tensorflow": "2.20.0", "tf-keras": "2.20.1", "keras": "3.10.0"}
    assert known_problems(previous, env={}, python=(3, 12)) == [], "the supported range's low end"


def test_each_rule_fires():
    cases = [
        ({**GOOD, "keras": "2.15.0"}, {}, (3, 11), "expects Keras 3"),
        ({**GOOD, "tf-keras": "2.15.1"}, {}, (3, 11), "tf-keras 2.15.1 does not match"),
        (GOOD, {"TF_USE_LEGACY_KERAS": "1"}, (3, 11), "TF_USE_LEGACY_KERAS"),
        ({**GOOD, "h5py": "3.7.0"}, {}, (3, 11), "h5py 3.7.0"),
        ({**GOOD, "tensorflow": "2.15.0", "tf-keras": None, "keras": "3.15.1"}, {}, (3, 11),
         "NumPy 2.4.6"),
        ({**GOOD, "tensorflow": None}, {}, (3, 11), "not installed"),
        (GOOD, {}, (3, 10), "Python 3.10"),
        (GOOD, {}, (3, 14), "Python 3.14"),
        ({**GOOD, "tensorflow": "2.19.0", "tf-keras": "2.19.0"}, {}, (3, 11),
         "TensorFlow 2.19.0: the lessons are measured on 2.20-2.21"),
    ]
    for versions, env, python, expected in cases:
        problems = known_problems(versions, env=env, python=python)
        assert any(expected in p for p in problems), (expected, problems)


def test_report_renders_text_and_html():
    report = environment_report(check_devices=False)
    text, page = str(report), report._repr_html_()
    assert "tensorflow" in text and report.versions["tensorflow"] in text
    assert "<table>" in page and "GPUs this course uses" in page
    assert report.memory_total_gb > 0 and report.disk_free_gb > 0


def test_gpu_rows_report_the_hardware_apart_from_what_the_course_uses(monkeypatch):
    """CUDA_VISIBLE_DEVICES=-1 hides every GPU from TensorFlow: the hardware row must not
    depend on it, and the course row must say why it is CPU only."""
    from forgekit.diagnose import environment

    monkeypatch.setattr(environment, "hardware_gpus", lambda: ["NVIDIA A100-SXM4-40GB"])
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "-1")
    rows = dict(environment.environment_report(check_devices=False).rows())
    assert rows["GPUs in this machine"] == "NVIDIA A100-SXM4-40GB"
    assert rows["GPUs this course uses"].startswith("none: CPU only (CUDA_VISIBLE_DEVICES=-1")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    report = environment.environment_report(check_devices=False)
    report.gpus = ["/physical_device:GPU:0"]  # as TensorFlow would list it
    assert dict(report.rows())["GPUs this course uses"] == "/physical_device:GPU:0"


def test_hardware_gpus_reads_the_driver_not_tensorflow():
    import subprocess
    import sys

    code = ("import sys; from forgekit.diagnose.environment import hardware_gpus\n"
            "found = hardware_gpus()\n"
            "print(found is None or isinstance(found, list), 'tensorflow' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, env={"CUDA_VISIBLE_DEVICES": "-1", "PATH": "/usr/bin:/bin"})
    assert done.stdout.split() == ["True", "False"], done.stderr
