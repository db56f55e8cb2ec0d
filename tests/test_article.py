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
    AuditSettings,
    Lab,
    audit,
    verdict_of,
)
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
    assert fn.__module__ not in (article.__name__, "forgekit.course.article_rows")
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


@pytest.mark.parametrize("backup_lost, best_lost, killed, verdict", [
    (4, 20, True, "partly"), (4, 4, True, "holds"), (12, 20, True, "does not hold"),
    (4, 4, False, "does not hold")])
def test_checkpoint_row_judges_fake_measurements(backup_lost, best_lost, killed, verdict):
    numbers = {"killed_by_sigkill": killed, "batches_per_epoch": 8, "batches_done_at_kill": 44,
               "backup_restarts_after_epochs": 5, "batches_lost_with_backup": backup_lost,
               "best_only_file_epoch": 3, "best_only_saves": 3,
               "batches_lost_with_best_only": best_lost}
    checks, reason = _row("checkpoint_loses_one_epoch").judge(numbers)
    assert verdict_of(checks) == verdict
    assert f"{best_lost} batches behind" in reason


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
    lab = Lab(tmp_path, AuditSettings.ci())
    calls = []

    def make():
        calls.append(1)
        raise OSError("no space left")

    for _ in range(2):
        with pytest.raises(OSError, match="no space"):
            lab.shared("artifact", make)
    assert len(calls) == 1


def test_a_shared_artifact_is_prepared_once(tmp_path):
    lab = Lab(tmp_path, AuditSettings.ci())

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
    assert result.row("weights_only_resume_restarts_optimizer").measured[
        "steps_after_load_weights"] == 0
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
