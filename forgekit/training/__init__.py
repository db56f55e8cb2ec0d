"""Training runs a lesson can kill: synthetic tasks and models, the child process and its worker,
and checkpoints that survive the kill. Lessons use the names below as ``forgekit.training.X``."""

from forgekit._lazy import lazy_names

__getattr__, __dir__ = lazy_names(__name__, {
    name: "run" for name in (
        "TASK_NAMES", "BOOKKEEPING", "SAVE_PHASES", "Task", "make_task", "set_determinism",
        "build_model", "batch_loss_recorder", "max_abs_diff", "RunSpec", "RunResult",
        "TrainingProcessError", "run_training", "plot_curves")
})
