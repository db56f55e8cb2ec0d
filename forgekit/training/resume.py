"""Stop a run, save it two ways, resume both, and compare them with a run that never stopped.

Lesson 03 shows this experiment cell by cell in plain Keras; :func:`compare_resumes` is the same
experiment in one call, for places that need its numbers rather than its lesson (the audit of
the article's claims, lesson 10). Everything happens in this process: same task, same initial
weights and same batch order (``shuffle=False``) for every run, so the only difference between
the resumed runs and the uninterrupted one is what the saved file carried.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class ResumeComparison:
    """What each way of resuming restored, and where each resumed run ended.

    ``*_diff`` is the largest absolute weight difference from the uninterrupted run at the end
    (0.0: bit for bit the same run).
    """

    epochs: int
    resume_at: int
    steps_per_epoch: int
    steps_saved: int  # the optimizer's step count when the run stopped
    steps_after_load_model: int  # after keras.models.load_model of the model.save() file
    steps_after_load_weights: int  # after load_weights into a freshly compiled model
    full_diff: float  # resumed from model.save() + load_model
    weights_only_diff: float  # resumed from save_weights() + load_weights, fresh optimizer
    loss_jump: float  # weights-only run's first resumed epoch loss minus the uninterrupted one's

    @property
    def full_resume_exact(self) -> bool:
        """The model.save() resume ended exactly where the uninterrupted run ended."""
        return self.full_diff == 0.0


def compare_resumes(workdir: str | os.PathLike[str], *, epochs: int = 6, resume_at: int = 3,
                    task: Any = None, width: int = 64, seed: int = 0,
                    batch_size: int = 32) -> ResumeComparison:
    """Train ``epochs`` uninterrupted; train again, stop after ``resume_at``, write
    ``model.save("stopped.keras")`` and ``model.save_weights("stopped.weights.h5")`` in
    ``workdir``, resume each to ``epochs`` and compare with the uninterrupted run.

    ``task`` defaults to ``make_task(n_val=256)``; models come from
    :func:`~forgekit.training.tasks.build_model` with ``width`` and ``seed``.
    """
    if not 0 < resume_at < epochs:
        raise ValueError(f"resume_at must be between 1 and epochs - 1, got {resume_at} of {epochs}")
    import keras

    from forgekit.measure.compare import max_abs_diff
    from forgekit.training.tasks import build_model, make_task

    task = task if task is not None else make_task(n_val=256)
    folder = Path(workdir)
    folder.mkdir(parents=True, exist_ok=True)
    fit = dict(x=task.x_train, y=task.y_train, batch_size=batch_size, shuffle=False, verbose=0)

    reference = build_model(task, width=width, seed=seed)
    history = reference.fit(**fit, epochs=epochs).history

    stopped = build_model(task, width=width, seed=seed)
    stopped.fit(**fit, epochs=resume_at)
    stopped.save(folder / "stopped.keras")
    stopped.save_weights(folder / "stopped.weights.h5")

    full = keras.models.load_model(folder / "stopped.keras")
    fresh = build_model(task, width=width, seed=seed)
    with warnings.catch_warnings():
        # Keras warns that the optimizer variables in the file were skipped: that skip is
        # the point of this side of the comparison (a fresh optimizer).
        warnings.simplefilter("ignore")
        fresh.load_weights(folder / "stopped.weights.h5")
    loaded_steps = int(full.optimizer.iterations), int(fresh.optimizer.iterations)
    full.fit(**fit, epochs=epochs, initial_epoch=resume_at)
    weights_only = fresh.fit(**fit, epochs=epochs, initial_epoch=resume_at).history
    return ResumeComparison(
        epochs=epochs, resume_at=resume_at, steps_per_epoch=task.steps_per_epoch(batch_size),
        steps_saved=int(stopped.optimizer.iterations), steps_after_load_model=loaded_steps[0],
        steps_after_load_weights=loaded_steps[1],
        full_diff=max_abs_diff(full.get_weights(), reference.get_weights()),
        weights_only_diff=max_abs_diff(fresh.get_weights(), reference.get_weights()),
        loss_jump=float(weights_only["loss"][0] - history["loss"][resume_at]))
