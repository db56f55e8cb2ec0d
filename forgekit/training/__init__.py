"""Training runs a lesson can kill: synthetic tasks and models, the child process and its worker,
and checkpoints that survive the kill. Lessons use the names below as ``forgekit.training.X``."""

from forgekit._lazy import lazy_names

__getattr__, __dir__ = lazy_names(__name__, {
    **dict.fromkeys(("TASK_NAMES", "Task", "make_task", "set_determinism", "build_model",
                     "batch_loss_recorder"), "tasks"),
    **dict.fromkeys(("BOOKKEEPING", "SAVE_PHASES", "RunSpec", "TrainingRun",
                     "TrainingProcessError", "run_training"), "run"),
    **dict.fromkeys(("ResumeComparison", "compare_resumes"), "resume"),
    **dict.fromkeys(("MidSaveKill", "kill_mid_save"), "midsave"),
    "max_abs_diff": "forgekit.measure.compare",
})
