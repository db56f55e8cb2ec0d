"""The rows of the article audit: for each claim, how it is measured and how it is judged.

Each row pairs a ``measure`` step, which calls the row's forgekit experiment (the function the
lesson uses for that topic) and returns plain numbers, with a
``judge``, which turns the numbers into named checks and a reason. Nothing here decides a
verdict: :func:`forgekit.course.article.verdict_of` does, from the checks, the same way for
every row. :func:`build_rows` is the registry, read as ``forgekit.course.article.ROWS``; the rows
themselves live by topic in ``article_files``, ``article_training`` and ``article_serving``.

Rows read the lab's shared artifacts (one trained model, its export, one probe, one interrupted
run) but never write into them: a row that changes something (publishes a version, moves a
project) does it in a folder of its own, so no row's verdict depends on which rows ran before.
A row whose scenario did not happen (the run was not killed, did not overfit, Keras 2 could not
write its file) raises, so it reports ``error`` instead of a verdict nobody measured.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # article.py builds the rows from these functions: it imports this module
    from forgekit.course.article import ArticleClaim


# --------------------------------------------------------------------------------------------
# the registry


def build_rows(row: type[ArticleClaim]) -> tuple[ArticleClaim, ...]:
    """Every row, in the course's order (lesson by lesson, roughly), made with ``row``
    (:class:`~forgekit.course.article.ArticleClaim`, passed in so this module never imports
    the one that imports it)."""
    from forgekit import crosslang, sizes, tflite
    from forgekit.course import article_files as files
    from forgekit.course import article_serving as serving
    from forgekit.course import article_training as training
    from forgekit.diagnose import failures
    from forgekit.formats.detect import detect_format
    from forgekit.measure import fresh, probe
    from forgekit.measure.compare import max_abs_diff
    from forgekit.paths import project_path
    from forgekit.serving.process import InProcessServer
    from forgekit.serving.verify import verify_deployment
    from forgekit.training import run

    return (
        row(
            "save_writes_savedmodel",
            "model.save(path) writes a SavedModel folder.",
            "01_whole_model_formats", detect_format, "does not hold",
            files.measure_save_writes_savedmodel, files.judge_save_writes_savedmodel),
        row(
            "savedmodel_keeps_training_state",
            "A SavedModel carries the optimizer state and the compile settings (the article's "
            "\"compilation labels\") along with the weights.",
            "01_whole_model_formats", probe.matrix, "partly",
            files.measure_savedmodel_training_state, files.judge_savedmodel_training_state),
        row(
            "h5_lacks_serving",
            "A legacy .h5 file cannot be served: model servers load SavedModel folders, and "
            "the SavedModel loader cannot read an .h5.",
            "01_whole_model_formats", probe.matrix, "holds",
            files.measure_h5_lacks_serving, files.judge_h5_lacks_serving),
        row(
            "h5_savedmodel_mixup",
            "Reading an .h5 file through the SavedModel loader, or a SavedModel folder through "
            "the Keras file loader, fails: the two are laid out differently.",
            "05_wrong_path_failures", failures.run_matrix, "holds",
            files.measure_h5_savedmodel_mixup, files.judge_h5_savedmodel_mixup),
        row(
            "weights_5_10x_smaller",
            "A weights-only file takes 5 to 10 times less disk space than the whole model.",
            "02_weights_and_architecture", sizes.breakdown, "does not hold",
            files.measure_weights_smaller, files.judge_weights_smaller),
        row(
            "save_weights_tf_checkpoint",
            "model.save_weights() writes a TensorFlow checkpoint.",
            "02_weights_and_architecture", detect_format, "does not hold",
            files.measure_save_weights_format, files.judge_save_weights_format),
        row(
            "checkpoints_weights_only",
            "Checkpoint files keep the weights and nothing else.",
            "02_weights_and_architecture", probe.matrix, "does not hold",
            files.measure_checkpoints_weights_only, files.judge_checkpoints_weights_only),
        row(
            "json_yaml_architecture",
            "JSON or YAML files hold the architecture alone, so the design can be versioned "
            "apart from the weights.",
            "02_weights_and_architecture", probe.matrix, "partly",
            files.measure_json_yaml, files.judge_json_yaml),
        row(
            "tflite_from_savedmodel",
            "A .tflite model comes from converting a SavedModel; Keras does not write one itself.",
            "04_tflite", tflite.convert, "partly",
            files.measure_tflite, files.judge_tflite),
        row(
            "checkpoint_loses_one_epoch",
            "With a ModelCheckpoint callback saving every epoch, an interruption costs at most "
            "the epoch in progress.",
            "03_checkpoints_and_resume", run.run_training, "holds",
            training.measure_checkpoint_loses_one_epoch, training.judge_checkpoint_loses_one_epoch),
        row(
            "best_only_keeps_best_epoch",
            "ModelCheckpoint(save_best_only=True) keeps the best epoch, so an overfitted last "
            "epoch does not replace it.",
            "03_checkpoints_and_resume", run.run_training, "holds",
            training.measure_best_only, training.judge_best_only),
        row(
            "save_keeps_optimizer_for_resume",
            "model.save() keeps the optimizer, so training resumed after load_model continues "
            "from where it stopped.",
            "03_checkpoints_and_resume", max_abs_diff, "holds",
            training.measure_save_resume, training.judge_save_resume),
        row(
            "weights_only_resume_restarts_optimizer",
            "Resuming from a weights file without optimizer variables does not continue the "
            "same training run.",
            "03_checkpoints_and_resume", max_abs_diff, "holds",
            training.measure_weights_resume, training.judge_weights_resume),
        row(
            "savedmodel_cross_language",
            "A SavedModel can be loaded from languages other than Python, such as C or Java.",
            "09_cross_language", crosslang.run_c, "holds",
            serving.measure_cross_language, serving.judge_cross_language),
        row(
            "keras_version_mismatch",
            "A model saved by one Keras version fails to load in a different one.",
            "05_wrong_path_failures", fresh.run_fresh_many, "partly",
            serving.measure_keras_versions, serving.judge_keras_versions),
        row(
            "absolute_paths_break",
            "Hard-coding a model's absolute path in a script breaks the script once the project "
            "moves elsewhere.",
            "05_wrong_path_failures", project_path, "holds",
            serving.measure_absolute_paths, serving.judge_absolute_paths),
        row(
            "flat_path_serves_wrong_version",
            "Saving a retrained model to a flat file beside the served versions leaves the "
            "server answering with the old version.",
            "06_serving_incident", InProcessServer, "holds",
            serving.measure_flat_path, serving.judge_flat_path),
        row(
            "metadata_and_known_input_catch_it",
            "Asking the server which version answers (its metadata endpoint) and comparing its "
            "answer to a fixed input with the expected output catch a wrong version.",
            "07_deploying_with_tf_serving", verify_deployment, "holds",
            serving.measure_checks_catch, serving.judge_checks_catch),
    )
