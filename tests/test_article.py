"""The article-claims audit: the registry, the verdict logic, failure isolation, and a few rows
run for real (lesson 10 runs the whole audit in CI; it is not repeated here)."""

from __future__ import annotations

import importlib
import inspect
import json
import re
import subprocess
import sys

import pytest

from forgekit.course import article
from forgekit.course.article import (
    ERROR,
    EVIDENCE_KEYS,
    VERDICTS,
    ArticleAudit,
    ArticleClaim,
    AuditRow,
    audit,
    verdict_of,
)
from forgekit.course.article_workbench import AuditSettings, Workbench
from forgekit.course.claims import CLAIMS_FILE_ENV, STRICT_ENV, ClaimError, read_claims
from forgekit.course.map import LESSONS
from tests.conftest import ROOT

# Every claim issue 17 names, plus the article's other factual claims the course measures.
ISSUE_ROWS = {
    "savedmodel_keeps_training_state", "h5_lacks_serving", "weights_5_10x_smaller",
    "json_yaml_architecture", "tflite_from_savedmodel", "checkpoint_loses_one_epoch",
    "save_keeps_optimizer_for_resume", "savedmodel_cross_language",
    "flat_path_serves_wrong_version", "metadata_and_known_input_catch_it",
}
OTHER_ARTICLE_ROWS = {
    "save_writes_savedmodel", "save_weights_tf_checkpoint", "keras_version_mismatch",
    "absolute_paths_break", "h5_savedmodel_mixup", "checkpoints_weights_only",
    "best_only_keeps_best_epoch", "weights_only_resume_restarts_optimizer",
}


@pytest.fixture
def claims_file(tmp_path, monkeypatch):
    path = tmp_path / "claims.jsonl"
    monkeypatch.setenv(CLAIMS_FILE_ENV, str(path))
    monkeypatch.setenv(STRICT_ENV, "0")
    return path


# --------------------------------------------------------------------------------------------
# the registry


def test_registry_covers_every_claim_the_issue_names():
    ids = [row.id for row in article.ROWS]
    assert len(ids) == len(set(ids)), "row ids must be unique"
    missing = (ISSUE_ROWS | OTHER_ARTICLE_ROWS) - set(ids)
    assert not missing, sorted(missing)


@pytest.mark.parametrize("row", article.all_rows(), ids=lambda r: r.id)
def test_every_row_has_a_forgekit_experiment(row):
    fn = row.experiment
    assert callable(fn)
    assert fn.__module__.startswith("forgekit.")
    assert not fn.__module__.startswith("forgekit.course.article")
    assert "<lambda>" not in fn.__qualname__ and "<locals>" not in fn.__qualname__
    # the dotted name resolves to this very object: a reader can find and call it
    module, _, name = row.experiment_name.rpartition(".")
    owner = importlib.import_module(module)
    assert getattr(owner, name) is fn
    # the measure step uses the experiment it is handed (not one of its own)
    handed = list(inspect.signature(row.measure).parameters)[0]
    body = inspect.getsource(row.measure).split(":", 1)[1].split("\n", 1)[1]
    assert re.search(rf"\b{handed}\b", body), f"{row.measure.__name__} ignores {handed}"
    assert row.expected in VERDICTS
    assert row.lesson in {lesson.notebook for lesson in LESSONS}
    assert (ROOT / "notebooks" / f"{row.lesson}.ipynb").exists()
    assert row.statement.strip() and len(row.statement) < 200
    assert row.id in row.claim_text and "{" not in row.claim_text


def _code_of(lesson):
    notebook = json.loads((ROOT / "notebooks" / f"{lesson}.ipynb").read_text())
    return "\n".join("".join(c["source"]) for c in notebook["cells"] if c["cell_type"] == "code")


@pytest.mark.parametrize("row", article.all_rows(), ids=lambda r: r.id)
def test_every_row_experiment_is_called_in_its_lesson(row):
    """The experiment named for a row is a function its lesson's notebook really calls."""
    name = row.experiment.__name__
    assert re.search(rf"\b{re.escape(name)}\s*\(", _code_of(row.lesson)), (
        f"{row.id}: {row.experiment_name} is never called in {row.lesson}.ipynb")


def _experiment_free_measure(experiment, lab):
    return {}


def _judge(numbers):
    return {"ok": True}, "fine"


@pytest.mark.parametrize("experiment, why", [
    (None, "has no experiment"),
    ("forgekit.sizes.breakdown", "has no experiment"),  # a name is not a callable
    (lambda path: 0, "named forgekit function"),
    (_experiment_free_measure, "named forgekit function"),  # defined outside forgekit
    (json.dumps, "named forgekit function"),
])
def test_a_row_without_a_real_experiment_is_refused(experiment, why):
    with pytest.raises(ValueError, match=why):
        ArticleClaim("x", "A claim.", "02_weights_and_architecture", experiment, "holds",
                     _experiment_free_measure, _judge)


def test_a_row_with_an_unknown_verdict_or_lesson_is_refused():
    from forgekit import sizes

    with pytest.raises(ValueError, match="expected must be one of"):
        ArticleClaim("x", "A claim.", "02_weights_and_architecture", sizes.breakdown, "mostly",
                     _experiment_free_measure, _judge)
    with pytest.raises(ValueError, match="not a lesson"):
        ArticleClaim("x", "A claim.", "99_nowhere", sizes.breakdown, "holds",
                     _experiment_free_measure, _judge)


def test_rows_build_without_importing_tensorflow():
    code = ("import sys\nfrom forgekit.course import article\nn = len(article.ROWS)\n"
            "print(n, 'tensorflow' in sys.modules, 'keras' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    n, tf_loaded, keras_loaded = out.stdout.split()
    assert int(n) == len(article.ROWS) and tf_loaded == keras_loaded == "False"


# --------------------------------------------------------------------------------------------
# verdicts: computed from numbers


def test_verdict_of_reaches_every_verdict():
    assert verdict_of({"a": True, "b": True}) == "holds"
    assert verdict_of({"a": False, "b": False}) == "does not hold"
    assert verdict_of({"a": True, "b": False}) == "partly"
    with pytest.raises(ValueError):
        verdict_of({})


def _row(row_id):
    return next(r for r in article.ROWS if r.id == row_id)


@pytest.mark.parametrize("ratio, bare, verdict", [
    (7.0, 8.0, "holds"), (1.07, 1.93, "does not hold"), (6.0, 2.0, "partly")])
def test_size_row_judges_fake_measurements(ratio, bare, verdict):
    numbers = {"ratio": ratio, "ratio_without_optimizer": bare, "optimizer_over_weights": 2.0,
               "keras_bytes": 1, "weights_h5_bytes": 1, "weights_h5_without_optimizer_bytes": 1}
    checks, reason = _row("weights_5_10x_smaller").judge(numbers)
    assert verdict_of(checks) == verdict
    assert f"{ratio:.2f}x" in reason  # the reason quotes the measured number


@pytest.mark.parametrize("newest_epoch, steps_in_file, verdict", [
    (5, 40, "holds"), (4, 32, "partly"), (3, 0, "does not hold")])
def test_checkpoint_row_judges_fake_measurements(newest_epoch, steps_in_file, verdict):
    numbers = {"killed_by_sigkill": True, "batches_per_epoch": 8, "batches_done_at_kill": 44,
               "per_epoch_files": newest_epoch, "newest_file_epoch": newest_epoch,
               "batches_lost_with_per_epoch_file": 44 - newest_epoch * 8,
               "optimizer_steps_in_newest_file": steps_in_file,
               "best_only_file_epoch": 3, "batches_lost_with_best_only": 20}
    checks, reason = _row("checkpoint_loses_one_epoch").judge(numbers)
    assert verdict_of(checks) == verdict
    assert f"{44 - newest_epoch * 8} batches lost" in reason
    assert "20 batches behind" not in reason  # the best-only lag is the best-only row's reason
    _, best_reason = _row("best_only_keeps_best_epoch").judge(
        {"best_file_val_loss": 0.5, "lowest_val_loss": 0.5, "last_epoch_val_loss": 0.7,
         "epochs_completed": 5, "best_only_file_epoch": 3, "batches_lost_with_best_only": 20})
    assert "20 batches behind" in best_reason and ".keras" not in best_reason


def test_a_run_that_was_not_killed_or_did_not_overfit_is_not_a_verdict(tmp_path):
    """No verdict from a scenario that did not happen: both checkpoint rows raise (error)."""
    from types import SimpleNamespace

    from forgekit.course import article_training

    lab = Workbench(tmp_path, AuditSettings.ci())
    with pytest.raises(RuntimeError, match="not killed"):
        article_training._interrupted(lambda *a, **k: SimpleNamespace(killed=False), lab)
    lab = Workbench(tmp_path, AuditSettings.ci())
    improving = SimpleNamespace(history={"val_loss": [0.9, 0.8, 0.7]})  # best = last epoch
    lab.shared("interrupted", lambda: {"killed": improving, "steps": 8, "folder": tmp_path})
    done = article.run_row(_row("best_only_keeps_best_epoch"), lab)
    assert done.verdict == ERROR and "did not overfit" in done.reason


@pytest.mark.parametrize("row_id, numbers, verdict", [
    ("save_writes_savedmodel",  # a folder on disk that is not a SavedModel is not one
     {"save_without_extension_refused": False, "save_without_extension_error": "",
      "no_extension_kind": "keras", "save_keras_kind": "keras", "export_kind": "savedmodel"},
     "does not hold"),
    ("save_writes_savedmodel",
     {"save_without_extension_refused": False, "save_without_extension_error": "",
      "no_extension_kind": "savedmodel", "save_keras_kind": "keras", "export_kind": "savedmodel"},
     "partly"),
    ("h5_lacks_serving",  # the checks can come out false: a loader that reads the folder
     {"server_loader_refuses_h5_version": False, "server_loader_error": "",
      "saved_model_load_refuses_h5_version": False, "saved_model_load_error": "",
      "export_signatures": 2, "server": "x"}, "does not hold"),
    ("absolute_paths_break",  # a hard-coded path that found the copy's model: no silent wrong load
     {"after_move_load_fails": True, "after_move_error": "ValueError: File not found",
      "hard_coded_path_inside_copy": False, "hard_coded_diff_vs_original": 0.9,
      "hard_coded_diff_vs_copy": 0.0, "project_path_inside_copy": True,
      "project_path_diff_vs_copy": 0.0, "project_path_diff_vs_original": 0.9}, "partly"),
    ("absolute_paths_break",  # a moved project whose hard-coded path still loads: not a break
     {"after_move_load_fails": False, "after_move_error": "",
      "hard_coded_path_inside_copy": False, "hard_coded_diff_vs_original": 0.0,
      "hard_coded_diff_vs_copy": 0.9, "project_path_inside_copy": True,
      "project_path_diff_vs_copy": 0.0, "project_path_diff_vs_original": 0.9}, "partly"),
    ("savedmodel_keeps_training_state",
     {"export_optimizer_variables": False, "export_optimizer_restored": False,
      "export_compile_restored": False, "export_weights_max_abs_diff": 0.0,
      "export_signatures": "serve", "tf_saved_model_save_optimizer_variables": 0,
      "tf_saved_model_load_keras_optimizer": False, "tf_saved_model_load_compiled": False,
      "keras_optimizer_restored": True, "keras_compile_restored": True}, "does not hold"),
    ("keras_version_mismatch",  # every load across the versions fails: then the claim holds
     {"keras2_version": "2.21.0", "keras2_reads_own": True, "keras2_reads_keras3_keras": False,
      "keras2_reads_keras3_h5": False, "keras3_reads_keras2_h5": False, "keras3_error": "ValueError",
      "keras3_reads_keras2_mse_h5": False, "keras3_reads_own_mse_h5": True,
      "keras3_reads_keras2_keras": False, "mse_errors_identical": False,
      "keras2_errors": "TypeError"}, "holds"),
    ("keras_version_mismatch",  # Keras 3 reads the Keras 2 file; its "mse" failure is its own
     {"keras2_version": "2.21.0", "keras2_reads_own": True, "keras2_reads_keras3_keras": False,
      "keras2_reads_keras3_h5": False, "keras3_reads_keras2_h5": True, "keras3_error": "",
      "keras3_reads_keras2_mse_h5": False, "keras3_reads_own_mse_h5": False,
      "keras3_reads_keras2_keras": False, "mse_errors_identical": True,
      "keras2_errors": "TypeError"}, "partly"),
])
def test_rows_judge_fake_measurements_both_ways(row_id, numbers, verdict):
    checks, reason = _row(row_id).judge(numbers)
    assert verdict_of(checks) == verdict and reason


def test_keras_version_row_with_a_failed_control_is_an_error(tmp_path):
    """The control is not one of the checks: Keras 2 failing on its own files gives no verdict."""
    numbers = {"keras2_version": "2.21.0", "keras2_reads_own": False,
               "keras2_own_errors": "OSError: unable to open file",
               "keras2_reads_keras3_keras": False, "keras2_reads_keras3_h5": False,
               "keras3_reads_keras2_h5": False, "keras3_error": "ValueError",
               "keras3_reads_keras2_keras": False, "keras3_reads_keras2_mse_h5": False,
               "keras3_reads_own_mse_h5": True, "mse_errors_identical": False,
               "keras2_errors": "TypeError, TypeError"}
    with pytest.raises(RuntimeError, match="the control failed"):
        _row("keras_version_mismatch").judge(numbers)
    from types import SimpleNamespace

    lab = Workbench(tmp_path, AuditSettings.ci())
    row = _row("keras_version_mismatch")
    fake = SimpleNamespace(**{f: getattr(row, f) for f in (
        "id", "statement", "lesson", "expected", "judge")},
        measure=lambda experiment, lab: numbers, experiment=None, experiment_name="fake")
    done = article.run_row(fake, lab)
    assert done.verdict == ERROR and "the control failed" in done.reason


def _reuses(human_bytes, lab):
    lab.shared("probe", lambda: "built")
    return {"shown": human_bytes(1536)}


def test_a_row_names_the_shared_artifacts_an_earlier_row_built(tmp_path):
    from forgekit.table import human_bytes

    lab = Workbench(tmp_path, AuditSettings.ci())
    first, second = (ArticleClaim(name, "A claim.", "00_start_here", human_bytes, "holds", _reuses,
                                  _shown_right) for name in ("first", "second"))
    assert article.run_row(first, lab).reused == ()  # it built the probe itself
    again = article.run_row(second, lab)
    assert again.reused == ("probe of every format",) and "reusing the probe" in str(again)


def _fresh_outcome(ok, error_type=None, value=None):
    from forgekit.measure.fresh import FreshOutcome

    return FreshOutcome(ok=ok, value=value, error_type=error_type, message=error_type or "")


def _keras_versions_with(tmp_path, outcomes, write_file):
    """Run the keras_version_mismatch row with a stand-in for the fresh Keras 2 process."""
    from types import SimpleNamespace

    row = _row("keras_version_mismatch")
    lab = Workbench(tmp_path / "lab", AuditSettings.ci())
    files = {}
    for kind, name in (("keras", "model.keras"), ("h5_model", "model.h5")):
        files[kind] = SimpleNamespace(path=tmp_path / name)
        files[kind].path.write_text("stand-in")
    lab.shared("probe", lambda: files)

    def fake_run_fresh_many(jobs, **kwargs):
        if write_file:
            for name in ("k2_model.h5", "k2_mse.h5"):
                (lab.workdir / "keras_versions" / name).write_text("not really")
        return outcomes

    fake = SimpleNamespace(**{f: getattr(row, f) for f in (
        "id", "statement", "lesson", "expected", "measure", "judge")},
        experiment=fake_run_fresh_many, experiment_name="fake")
    return article.run_row(fake, lab)


def test_keras_version_row_is_an_error_when_keras_2_cannot_write(tmp_path):
    no_tf_keras = {"write": _fresh_outcome(False, "ModuleNotFoundError"),
                   "keras": _fresh_outcome(False, "NameError"),
                   "h5": _fresh_outcome(False, "NameError")}
    done = _keras_versions_with(tmp_path, no_tf_keras, write_file=False)
    assert done.verdict == ERROR and "could not write" in done.reason


def test_keras_version_row_counts_only_real_load_failures(tmp_path):
    missing = {"write": _fresh_outcome(True, value="2.21.0"),
               "keras": _fresh_outcome(False, "FileNotFoundError"),
               "h5": _fresh_outcome(False, "TypeError")}
    done = _keras_versions_with(tmp_path, missing, write_file=True)
    assert done.verdict == ERROR and "did not get to read the file" in done.reason


# --------------------------------------------------------------------------------------------
# the audit: one row's failure never loses the others


def _shown(human_bytes, lab):
    return {"shown": human_bytes(1536)}


def _shown_right(numbers):
    return {"1536 bytes read as 1.5 KB": numbers["shown"] == "1.5 KB"}, f"shown {numbers['shown']}"


def _raises(human_bytes, lab):
    raise RuntimeError("the disk vanished")


def _fake_rows():
    from forgekit.table import human_bytes

    good = ArticleClaim("good", "Byte counts are shown for people.", "00_start_here",
                        human_bytes, "holds", _shown, _shown_right)
    bad = ArticleClaim("bad", "This experiment crashes.", "00_start_here", human_bytes,
                       "holds", _raises, _shown_right)
    wrong = ArticleClaim("wrong", "The course expects the opposite.", "00_start_here",
                         human_bytes, "does not hold", _shown, _shown_right)
    return good, bad, wrong


def test_a_raising_row_is_an_error_and_the_others_survive(tmp_path, claims_file):
    good, bad, wrong = _fake_rows()
    seen = []
    result = audit(tmp_path / "audit", rows=[bad, good, wrong],
                   progress=lambda i, n, row_id: seen.append((i, n, row_id)))
    assert seen == [(0, 3, "bad"), (1, 3, "good"), (2, 3, "wrong")]
    assert result.row("bad").verdict == ERROR
    assert "RuntimeError" in result.row("bad").reason and "disk vanished" in result.row("bad").reason
    assert result.row("good").verdict == "holds" and result.row("good").as_expected
    assert result.row("wrong").verdict == "holds" and not result.row("wrong").as_expected
    recorded = {c["evidence"]["article_row"]: c for c in read_claims(claims_file)}
    assert {k: c["holds"] for k, c in recorded.items()} == {"bad": False, "good": True,
                                                           "wrong": False}
    for c in recorded.values():
        assert set(EVIDENCE_KEYS) <= set(c["evidence"]) and "expected" in c["evidence"]
    assert recorded["good"]["evidence"]["shown"] == "1.5 KB"
    assert recorded["good"]["evidence"]["experiment"] == "forgekit.table.human_bytes"


def test_strict_mode_records_every_row_before_failing(tmp_path, claims_file, monkeypatch):
    monkeypatch.setenv(STRICT_ENV, "1")
    good, bad, wrong = _fake_rows()
    with pytest.raises(ClaimError) as failed:
        audit(tmp_path / "audit", rows=[bad, good, wrong])
    assert "article row bad" in str(failed.value) and "article row wrong" in str(failed.value)
    assert len(read_claims(claims_file)) == 3


def test_a_failed_shared_step_fails_each_user_without_a_retry(tmp_path):
    lab = Workbench(tmp_path, AuditSettings.ci())
    calls = []

    def make():
        calls.append(1)
        raise OSError("no space left")

    for _ in range(2):
        with pytest.raises(OSError, match="no space"):
            lab.shared("artifact", make)
    assert len(calls) == 1


def test_a_shared_artifact_is_prepared_once(tmp_path):
    lab = Workbench(tmp_path, AuditSettings.ci())

    def write():
        folder = lab.folder("probe")
        (folder / "model.h5").write_text("kept")
        return folder / "model.h5"

    first = lab.shared("probe", write)
    assert lab.shared("probe", write) == first and first.read_text() == "kept"


def test_the_audit_renders_and_round_trips(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    rows = [AuditRow("a", "Claim A.", "forgekit.sizes.breakdown", "02_weights_and_architecture",
                     {"ratio": 1.07}, "does not hold", "ratio 1.07x", "does not hold", 0.5,
                     {"the ratio is 5-10x": False}),
            AuditRow("b", "Claim B.", "forgekit.tflite.convert", "04_tflite", {},
                     ERROR, "the experiment raised OSError: gone", "holds", 0.1)]
    result = ArticleAudit(rows, {"TensorFlow": "2.21.0", "Keras": "3.15.1"}, AuditSettings.ci())
    text, page = str(result.table()), result._repr_html_()
    assert "✗ does not hold" in text and "✗ error" in text and "TensorFlow 2.21.0" in text
    # one line per row where a learner reads it; the checks and evidence closed under it
    assert str(result).splitlines()[1].startswith("✗ does not hold  a (02): ratio 1.07x")
    assert "[the course says holds]" in str(result) and "<details>" in page
    assert "✗ the ratio is 5-10x" in str(result.details()) and "✗ the ratio" not in str(result)
    assert "ratio 1.07x" in page and "forgekit.tflite.convert" in page
    assert "✗ the ratio is 5-10x" in page  # the checks behind the verdict
    assert result.counts()["does not hold"] == 1 and result.counts()[ERROR] == 1
    saved = json.loads(result.to_json(tmp_path / "audit.json").read_text())
    assert [r["id"] for r in saved["rows"]] == ["a", "b"]
    assert saved["rows"][0]["measured"] == {"ratio": 1.07} and saved["settings"]["units"] == 32
    fig = result.plot()
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == ["a", "b"]
    tiles = [t.get_text() for t in fig.axes[0].texts]
    assert tiles == ["does not hold", "error (course: holds)"]  # visible however fast the row
    with pytest.raises(KeyError):
        result.row("c")


def test_an_unknown_row_id_is_refused_before_anything_runs(tmp_path):
    with pytest.raises(ValueError, match="no article row 'weights_tiny'.*weights_5_10x_smaller"):
        audit(tmp_path / "audit", rows=["weights_tiny"])
    assert not (tmp_path / "audit").exists()


@pytest.mark.parametrize("resume_at", [0, 4, 9])
def test_compare_resumes_refuses_a_stop_outside_the_run(tmp_path, resume_at):
    from forgekit.training import compare_resumes

    with pytest.raises(ValueError, match="between 1 and epochs - 1"):
        compare_resumes(tmp_path, epochs=4, resume_at=resume_at)


def test_settings_by_name():
    assert AuditSettings.named("ci") == AuditSettings.ci()
    assert AuditSettings.named("workshop") == AuditSettings()
    assert AuditSettings.ci().samples < AuditSettings().samples
    with pytest.raises(ValueError, match="workshop"):
        AuditSettings.named("huge")


# --------------------------------------------------------------------------------------------
# a few rows for real (CI sizes)


def test_cheap_rows_measure_the_course_verdicts(tmp_path, claims_file):
    ids = ["save_weights_tf_checkpoint", "weights_5_10x_smaller", "absolute_paths_break",
           "save_keeps_optimizer_for_resume", "weights_only_resume_restarts_optimizer"]
    result = audit(tmp_path / "audit", rows=ids, settings=AuditSettings.ci())
    assert {r.id: r.verdict for r in result.rows} == {r: _row(r).expected for r in ids}
    size = result.row("weights_5_10x_smaller").measured
    assert size["ratio"] == size["keras_bytes"] / size["weights_h5_bytes"] < 5
    assert result.row("weights_5_10x_smaller").reason.startswith(f"ratio {size['ratio']:.2f}x")
    resumed = result.row("save_keeps_optimizer_for_resume").measured
    assert resumed["steps_saved"] == resumed["steps_after_load_model"] > 0
    weights = result.row("weights_only_resume_restarts_optimizer").measured
    assert weights["steps_after_weights_only"] == 0 < weights["max_abs_diff_weights_only"]
    # Keras 3's save_weights() file does carry Adam: restored once the optimizer is built
    assert weights["steps_after_load_weights_built"] == weights["steps_saved"]
    assert weights["max_abs_diff_load_weights_built"] == 0.0
    moved = result.row("absolute_paths_break").measured
    assert moved["hard_coded_diff_vs_original"] == 0.0 < moved["hard_coded_diff_vs_copy"]
    assert moved["after_move_load_fails"] and moved["after_move_error"]
    assert result.row("absolute_paths_break").reason.startswith("after a move the hard-coded path fails")
    assert result.row("save_weights_tf_checkpoint").measured["weights_kind"] == "weights_h5"
    assert all(c["holds"] for c in read_claims(claims_file))
    assert len(read_claims(claims_file)) == len(ids)


def test_cross_language_row_judges_java_only_where_a_jdk_is():
    c_only = {"c_exit_code": 0, "c_max_abs_diff": 0.0, "c_seconds": 0.8, "c_exit_code_on_h5": 1,
              "java": "not installed"}
    checks, reason = _row("savedmodel_cross_language").judge(c_only)
    assert len(checks) == 1 and verdict_of(checks) == "holds" and "no JDK" in reason
    java_fails = {**c_only, "java": "run", "java_exit_code": 1,
                  "java_max_abs_diff": float("inf"), "java_seconds": 1.0}
    checks, reason = _row("savedmodel_cross_language").judge(java_fails)
    assert verdict_of(checks) == "partly" and "Java loader (JNI) exits 1" in reason


def test_serving_rows_do_not_depend_on_their_order(tmp_path, claims_file):
    """Each serving row deploys under its own base path: the checks row publishes version 2
    and the flat-path row, run after it, still measures its own v1-plus-flat-file deploy."""
    ids = ["metadata_and_known_input_catch_it", "flat_path_serves_wrong_version"]
    result = audit(tmp_path / "audit", rows=ids, settings=AuditSettings.ci())
    assert {r.id: r.verdict for r in result.rows} == {r: _row(r).expected for r in ids}
    assert result.row("flat_path_serves_wrong_version").measured["answering_version"] == 1
    assert result.row("metadata_and_known_input_catch_it").measured["published_ok"]
    assert "InProcessServer" in result.row("flat_path_serves_wrong_version").reason
