"""Article rows about training runs: checkpoints, resuming and best-only saves (lesson 03).
Each row is a ``measure_*`` / ``judge_*`` pair; see :mod:`forgekit.course.article_rows`."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from forgekit.course.article import Judgement, Numbers
    from forgekit.course.article_workbench import Workbench


# ModelCheckpoint: an interruption costs at most one epoch --------------------------------

def _interrupted(run_training: Callable[..., Any], lab: Workbench) -> dict[str, Any]:
    """A real SIGKILL in the middle of the last epoch of an overfitting run that keeps a plain
    ModelCheckpoint of every epoch (the article's setup) and a best-only one beside it."""
    def run() -> dict[str, Any]:
        s = lab.settings
        folder = lab.folder("interrupted")
        model = {"width": s.checkpoint_units, "learning_rate": 3e-3}  # overfits within epochs
        steps = _checkpoint_task().steps_per_epoch(32)
        kill_at = (s.checkpoint_epochs - 1) * steps + steps // 2  # mid-way through the last
        killed = run_training(folder, s.checkpoint_epochs, task={"n_val": 256}, model=model,
                              epoch_checkpoint="epochs/ckpt-{epoch:02d}.keras",
                              checkpoint="best.keras", kill_after_batches=kill_at)
        if not killed.killed:  # the scenario needs the kill: no verdict without it
            raise RuntimeError(f"the training run was not killed ({killed}): not exercised")
        return {"killed": killed, "steps": steps, "folder": folder}

    return lab.shared("interrupted", run)


def _checkpoint_task() -> Any:
    from forgekit.training import make_task

    return make_task(n_val=256)  # what run_training(task={"n_val": 256}) trains on


def measure_checkpoint_loses_one_epoch(run_training: Callable[..., Any], lab: Workbench) -> Numbers:
    import keras

    runs = _interrupted(run_training, lab)
    killed, steps, folder = runs["killed"], runs["steps"], runs["folder"]
    files = sorted((folder / "epochs").glob("ckpt-*.keras"))
    if not files:
        raise RuntimeError("the per-epoch ModelCheckpoint left no file: not exercised")
    newest = files[-1]
    saved_epochs = int(newest.stem.removeprefix("ckpt-"))  # {epoch} is 1-based in the name
    resumed = keras.models.load_model(newest)  # what a restart would load
    val = killed.history["val_loss"]
    # save_best_only writes on each new lowest val_loss: the file holds the last such epoch
    best_epoch = max(i for i, v in enumerate(val) if v < min(val[:i], default=float("inf"))) + 1
    return {"killed_by_sigkill": killed.killed, "batches_per_epoch": steps,
            "batches_done_at_kill": killed.batches, "per_epoch_files": len(files),
            "newest_file_epoch": saved_epochs,
            "batches_lost_with_per_epoch_file": killed.batches - saved_epochs * steps,
            "optimizer_steps_in_newest_file": int(resumed.optimizer.iterations),
            "best_only_file_epoch": best_epoch,
            "batches_lost_with_best_only": killed.batches - best_epoch * steps}


def judge_checkpoint_loses_one_epoch(n: Numbers) -> Judgement:
    steps, lost = n["batches_per_epoch"], n["batches_lost_with_per_epoch_file"]
    checks = {"the newest per-epoch checkpoint is less than one epoch behind the kill":
              0 <= lost < steps,
              "it holds that epoch's optimizer state, so training continues from it":
              n["optimizer_steps_in_newest_file"] == n["newest_file_epoch"] * steps}
    reason = (f"killed mid-epoch: the newest per-epoch file holds epoch {n['newest_file_epoch']}, "
              f"{lost} of {steps} batches lost\n"
              f"killed by SIGKILL after {n['batches_done_at_kill']} batches ({steps} per epoch): "
              f"the newest of {n['per_epoch_files']} per-epoch ModelCheckpoint files holds epoch "
              f"{n['newest_file_epoch']} ({n['optimizer_steps_in_newest_file']} optimizer steps), "
              f"{lost} batches lost. This is the file saved every epoch; the save_best_only "
              "file of the article's recipe lags further, by design (best_only_keeps_best_epoch)")
    return checks, reason


def measure_best_only(run_training: Callable[..., Any], lab: Workbench) -> Numbers:
    import keras

    runs = _interrupted(run_training, lab)
    task = _checkpoint_task()
    val = runs["killed"].history["val_loss"]
    if min(val) >= val[-1]:  # the claim is about an overfitted last epoch: none here
        raise RuntimeError(f"the run did not overfit (last of {len(val)} epochs has the lowest "
                           f"val_loss {val[-1]:.4f}): not exercised")
    kept = keras.models.load_model(runs["folder"] / "best.keras")
    # save_best_only writes on each new lowest val_loss: the file holds the last such epoch
    best_epoch = max(i for i, v in enumerate(val) if v < min(val[:i], default=float("inf"))) + 1
    return {"best_file_val_loss": float(kept.evaluate(task.x_val, task.y_val, batch_size=32,
                                                      verbose=0)),
            "lowest_val_loss": min(val), "last_epoch_val_loss": val[-1],
            "epochs_completed": len(val), "best_only_file_epoch": best_epoch,
            "batches_lost_with_best_only": runs["killed"].batches - best_epoch * runs["steps"]}


def judge_best_only(n: Numbers) -> Judgement:
    checks = {"the file holds the lowest validation loss":
              abs(n["best_file_val_loss"] - n["lowest_val_loss"]) < 1e-5,
              "which is lower than the last epoch's":
              n["best_file_val_loss"] < n["last_epoch_val_loss"]}
    reason = (f"the best-only file holds val loss {n['best_file_val_loss']:.4f}, the lowest; the "
              f"last epoch's is {n['last_epoch_val_loss']:.4f}\n"
              f"the best-only checkpoint evaluates to {n['best_file_val_loss']:.4f} (lowest "
              f"seen {n['lowest_val_loss']:.4f}, last of {n['epochs_completed']} epochs "
              f"{n['last_epoch_val_loss']:.4f})")
    if "batches_lost_with_best_only" in n:  # the price of keeping the best: it lags the run
        reason += (f"; when the run was killed it held epoch {n['best_only_file_epoch']}, "
                   f"{n['batches_lost_with_best_only']} batches behind")
    return checks, reason


# model.save() keeps the optimizer, so resumed training continues -------------------------

def _resumes(diff: Callable[..., Any], lab: Workbench) -> Numbers:
    """Stop, save, resume every way (forgekit.training.compare_resumes, lesson 03's experiment in
    one call), each resumed run's end compared with the uninterrupted run's by ``diff``."""
    def run() -> Numbers:
        from forgekit.training import compare_resumes

        s = lab.settings
        r = compare_resumes(lab.folder("resume"), epochs=s.resume_epochs, resume_at=s.resume_at,
                            width=s.checkpoint_units)
        end = r.final_weights["uninterrupted"]
        return {"steps_saved": r.steps_saved,
                **{f"steps_after_{way}": n for way, n in r.steps_after.items()},
                **{f"max_abs_diff_{way}": diff(w, end) for way, w in r.final_weights.items()
                   if way != "uninterrupted"},
                "loss_jump_weights_only": r.first_loss["weights_only"]
                - r.first_loss["uninterrupted"]}

    return lab.shared("resume", run)


def measure_save_resume(max_abs_diff: Callable[..., Any], lab: Workbench) -> Numbers:
    r = _resumes(max_abs_diff, lab)
    return {k: r[k] for k in ("steps_saved", "steps_after_load_model",
                              "max_abs_diff_load_model")}


def judge_save_resume(n: Numbers) -> Judgement:
    checks = {"load_model brings back the optimizer's step count":
              n["steps_after_load_model"] == n["steps_saved"] > 0,
              "the resumed run ends exactly where the uninterrupted run ends":
              n["max_abs_diff_load_model"] == 0.0}
    reason = (f"load_model brings back {n['steps_after_load_model']} of {n['steps_saved']} Adam "
              f"steps; the resumed run ends {n['max_abs_diff_load_model']:.3g} from the "
              "uninterrupted one\n"
              f"optimizer steps {n['steps_after_load_model']} after load_model (saved "
              f"{n['steps_saved']}); weights at the end differ from the uninterrupted run by "
              f"{n['max_abs_diff_load_model']:.3g}")
    return checks, reason


def measure_weights_resume(max_abs_diff: Callable[..., Any], lab: Workbench) -> Numbers:
    r = _resumes(max_abs_diff, lab)
    return {k: v for k, v in r.items() if k != "steps_after_load_model"
            and k != "max_abs_diff_load_model"}


def judge_weights_resume(n: Numbers) -> Judgement:
    # The claim's setup: weights with no optimizer state. Keras 3's save_weights() file is not
    # that (it carries Adam's state); the reason says what it does, measured beside it.
    checks = {"loading weights without optimizer state starts the optimizer over":
              n["steps_after_weights_only"] == 0 < n["steps_saved"],
              "the resumed run leaves the uninterrupted run's path":
              n["max_abs_diff_weights_only"] > 0.0}
    reason = (f"without optimizer variables Adam restarts at step "
              f"{n['steps_after_weights_only']}; the run ends "
              f"{n['max_abs_diff_weights_only']:.3g} away from the uninterrupted one\n"
              f"a weights file without optimizer variables: optimizer steps "
              f"{n['steps_after_weights_only']} after loading (saved {n['steps_saved']}), the "
              f"run ends {n['max_abs_diff_weights_only']:.3g} away from the uninterrupted one "
              f"(loss jump {n['loss_jump_weights_only']:+.3g}). Keras 3's save_weights() file "
              f"does carry the optimizer state: loaded after optimizer.build() it restores "
              f"{n['steps_after_load_weights_built']} steps and ends "
              f"{n['max_abs_diff_load_weights_built']:.3g} away; into an unbuilt optimizer "
              f"Keras skips it ({n['steps_after_load_weights']} steps, "
              f"{n['max_abs_diff_load_weights']:.3g} away)")
    return checks, reason
