"""Stop a run, save it, resume it several ways, and compare each with a run that never stopped.

Lesson 03 shows this experiment cell by cell in plain Keras; :func:`compare_resumes` is the same
experiment in one call, for places that need its numbers rather than its lesson (the audit of
the article's claims, lesson 10). Everything happens in this process: same task, same initial
weights and same batch order (``shuffle=False``) for every run, so the only difference between
the resumed runs and the uninterrupted one is what the saved file carried and how it was loaded.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# The ways compare_resumes resumes the stopped run (keys of ResumeComparison's dicts).
RESUMES = {
    "load_model": "keras.models.load_model of the model.save() file",
    "load_weights": "save_weights() file into a fresh model, optimizer not built (Keras skips "
                    "the optimizer variables in the file)",
    "load_weights_built": "save_weights() file into a fresh model after optimizer.build()",
    "weights_only": "a weights file with no optimizer variables (written by an uncompiled "
                    "copy) into a fresh model after optimizer.build()",
}


@dataclass(frozen=True)
class ResumeComparison:
    """What each way of resuming restored, and where each resumed run ended.

    Keys of ``steps_after``/``final_weights``/``first_loss`` are those of :data:`RESUMES`;
    ``final_weights`` and ``first_loss`` also hold ``"uninterrupted"``. Compare weights with
    :func:`forgekit.measure.compare.max_abs_diff` (0.0: bit for bit the same run).
    """

    epochs: int
    resume_at: int
    steps_per_epoch: int
    steps_saved: int  # the optimizer's step count when the run stopped
    steps_after: dict[str, int]  # the optimizer's step count right after loading, per way
    final_weights: dict[str, list[Any]]  # every run's weights at the end
    first_loss: dict[str, float]  # the loss of the first epoch after the stop, per run


def compare_resumes(workdir: str | os.PathLike[str], *, epochs: int = 6, resume_at: int = 3,
                    task: Any = None, width: int = 64, seed: int = 0,
                    batch_size: int = 32) -> ResumeComparison:
    """Train ``epochs`` uninterrupted; train again, stop after ``resume_at``, write
    ``model.save("stopped.keras")``, ``model.save_weights("stopped.weights.h5")`` and a weights
    file without optimizer variables (``stopped.bare.weights.h5``) in ``workdir``, resume each
    way of :data:`RESUMES` to ``epochs`` and keep where each ended.

    ``task`` defaults to ``make_task(n_val=256)``; models come from
    :func:`~forgekit.training.tasks.build_model` with ``width`` and ``seed``.
    """
    if not 0 < resume_at < epochs:
        raise ValueError(f"resume_at must be between 1 and epochs - 1, got {resume_at} of {epochs}")
    import keras

    from forgekit.training.tasks import build_model, make_task

    task = task if task is not None else make_task(n_val=256)
    folder = Path(workdir)
    folder.mkdir(parents=True, exist_ok=True)
    fit = dict(x=task.x_train, y=task.y_train, batch_size=batch_size, shuffle=False, verbose=0)

    def build() -> Any:
        return build_model(task, width=width, seed=seed)

    reference = build()
    history = reference.fit(**fit, epochs=epochs).history

    stopped = build()
    stopped.fit(**fit, epochs=resume_at)
    stopped.save(folder / "stopped.keras")
    stopped.save_weights(folder / "stopped.weights.h5")
    bare = keras.models.clone_model(stopped)  # never compiled: its file has no optimizer group
    bare.set_weights(stopped.get_weights())
    bare.save_weights(folder / "stopped.bare.weights.h5")

    def into_fresh(path: Path, build_optimizer: bool) -> Any:
        model = build()
        if build_optimizer:  # Keras 3 restores optimizer variables only into a built optimizer
            model.optimizer.build(model.trainable_variables)
        with warnings.catch_warnings():
            # Keras warns when it skips or misses optimizer variables: the numbers say so.
            warnings.simplefilter("ignore")
            model.load_weights(path)
        return model

    resumed = {"load_model": keras.models.load_model(folder / "stopped.keras"),
               "load_weights": into_fresh(folder / "stopped.weights.h5", False),
               "load_weights_built": into_fresh(folder / "stopped.weights.h5", True),
               "weights_only": into_fresh(folder / "stopped.bare.weights.h5", True)}
    steps_after = {way: int(m.optimizer.iterations) for way, m in resumed.items()}
    first_loss = {"uninterrupted": float(history["loss"][resume_at])}
    for way, model in resumed.items():
        first_loss[way] = float(model.fit(**fit, epochs=epochs,
                                          initial_epoch=resume_at).history["loss"][0])
    return ResumeComparison(
        epochs=epochs, resume_at=resume_at, steps_per_epoch=task.steps_per_epoch(batch_size),
        steps_saved=int(stopped.optimizer.iterations), steps_after=steps_after,
        final_weights={"uninterrupted": reference.get_weights()}
        | {way: m.get_weights() for way, m in resumed.items()},
        first_loss=first_loss)
