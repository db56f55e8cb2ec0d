"""Small, repeatable training runs, in this process or in a separate one that can really die.

- :func:`make_task` generates a tiny synthetic problem (no downloads) that a small MLP overfits
  within a few epochs on a CPU, so "the best epoch" is visibly not the last one.
- :func:`build_model` returns a compiled model whose initial weights depend only on ``seed``.
- :func:`set_determinism` makes TensorFlow's kernels repeat bit for bit.
- :func:`run_training` trains in a child Python process with optional fault injection (SIGKILL
  after N epochs, after N batches, or in the middle of a checkpoint save) and reports what it
  left behind: history, exit status, files, final weights.

TensorFlow is imported inside the functions that need it, so importing this module is cheap.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from forgekit.quiet import QUIET_ENV

if TYPE_CHECKING:
    import keras
    from matplotlib.axes import Axes

TASK_NAMES = ("classify", "regress")
BOOKKEEPING = ".forgekit"  # run_training's own files inside a workdir (config, logs, weights)
# The points of a checkpoint save where run_training can kill the process.
SAVE_PHASES = ("before_write", "during_write", "before_replace", "after_replace")


@dataclass(frozen=True)
class Task:
    """A synthetic supervised problem: arrays plus what the model's head and loss should be."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    outputs: int  # units of the last layer
    loss: str  # a Keras loss identifier

    @property
    def validation_data(self) -> tuple[np.ndarray, np.ndarray]:
        return self.x_val, self.y_val

    def steps_per_epoch(self, batch_size: int) -> int:
        return math.ceil(len(self.x_train) / batch_size)


def make_task(name: str = "classify", *, n_train: int = 256, n_val: int = 1024,
              n_features: int = 32, noise: float = 0.1, seed: int = 0) -> Task:
    """Generate a small task that overfits within a few epochs, identical for identical args.

    ``"classify"``: two classes decided by ``x0*x1 + x2 - x3/2 > 0``; a fraction ``noise`` of
    labels is flipped (train and validation alike), and all other features are distractors,
    so a 2x128 MLP memorises the training set while the validation loss turns upwards.
    ``"regress"``: ``y = sin(2*x0) + x1/2`` plus Gaussian noise of standard deviation
    ``noise * 5``, again with distractor features.
    """
    if name not in TASK_NAMES:
        raise ValueError(f"unknown task {name!r}; choose one of {TASK_NAMES}")
    if n_features < 4:
        raise ValueError("n_features must be at least 4 (the signal uses 4 features)")
    rng = np.random.default_rng(seed)

    def draw(n: int) -> tuple[np.ndarray, np.ndarray]:
        x = rng.normal(size=(n, n_features)).astype("float32")
        if name == "classify":
            y = (x[:, 0] * x[:, 1] + x[:, 2] - 0.5 * x[:, 3] > 0).astype("int64")
            flip = rng.random(n) < noise
            return x, np.where(flip, 1 - y, y)
        y = np.sin(2 * x[:, 0]) + 0.5 * x[:, 1] + rng.normal(scale=5 * noise, size=n)
        return x, y.astype("float32")[:, None]

    x_train, y_train = draw(n_train)
    x_val, y_val = draw(n_val)
    if name == "classify":
        return Task(name, x_train, y_train, x_val, y_val, 2, "sparse_categorical_crossentropy")
    return Task(name, x_train, y_train, x_val, y_val, 1, "mse")


def set_determinism(seed: int = 0) -> None:
    """Seed Python, NumPy and TensorFlow, and make TensorFlow's ops deterministic.

    With this, the same model trained on the same batches in the same order ends with the same
    weights bit for bit, in this process or any other, which is what lets a resumed run be
    compared with an uninterrupted one exactly.
    """
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


def build_model(task: Task, *, width: int = 128, learning_rate: float = 1e-3,
                seed: int = 0) -> keras.Model:
    """A compiled 2-hidden-layer MLP for ``task`` with Adam.

    Each layer's initializer is seeded explicitly, so the starting weights depend on ``seed``
    alone, not on how many random numbers were drawn before.
    """
    import keras

    def dense(units: int, i: int, activation: str | None = None) -> keras.layers.Dense:
        init = keras.initializers.GlorotUniform(seed=seed * 100 + i)
        return keras.layers.Dense(units, activation=activation, kernel_initializer=init)

    model = keras.Sequential(
        [keras.Input((task.x_train.shape[1],)), dense(width, 0, "relu"),
         dense(width, 1, "relu"), dense(task.outputs, 2)],
        name=f"{task.name}_mlp",
    )
    loss = (keras.losses.SparseCategoricalCrossentropy(from_logits=True)
            if task.name == "classify" else task.loss)
    model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss=loss)
    return model


def batch_loss_recorder(losses: list[float]) -> keras.callbacks.Callback:
    """A callback appending each training batch's own loss to ``losses``.

    Keras 3 passes ``on_train_batch_end`` the *running mean* of the loss since the epoch began;
    the batch's own value is recovered as ``(b+1)*mean_b - b*mean_(b-1)`` (batches of equal
    size, as in every task here).
    """
    import keras

    previous = {"mean": 0.0}

    def on_batch_end(batch: int, logs: dict[str, Any]) -> None:
        mean = float(logs["loss"])
        losses.append((batch + 1) * mean - batch * previous["mean"] if batch else mean)
        previous["mean"] = mean

    return keras.callbacks.LambdaCallback(on_train_batch_end=on_batch_end)


def max_abs_diff(a: list[np.ndarray], b: list[np.ndarray]) -> float:
    """Largest absolute difference between two lists of weight arrays of the same shapes."""
    if len(a) != len(b):
        raise ValueError(f"different number of weight arrays: {len(a)} vs {len(b)}")
    diffs = [float(np.max(np.abs(np.asarray(x) - np.asarray(y)))) for x, y in zip(a, b, strict=True)]
    return max(diffs, default=0.0)


# ----------------------------------------------------------------------------------------------
# Training in a child process


@dataclass
class RunSpec:
    """Everything the worker process needs; serialised to JSON in the workdir."""

    epochs: int
    task: dict[str, Any] = field(default_factory=dict)
    model: dict[str, Any] = field(default_factory=dict)
    batch_size: int = 32
    seed: int = 0
    backup_dir: str | None = None
    backup_freq: str | int = "epoch"
    delete_backup: bool = True
    checkpoint: str | None = None
    atomic: bool = False
    monitor: str = "val_loss"
    last_checkpoint: str | None = None
    kill_after_epochs: int | None = None
    kill_after_batches: int | None = None
    kill_in_save: int | None = None
    kill_phase: str = "during_write"


@dataclass
class RunResult:
    """What a training process did and left behind. Epoch numbers are 0-based, as in Keras."""

    workdir: Path
    returncode: int
    seconds: float
    initial_epoch: int | None  # where fit() started (after any restore), None if it never did
    epochs: list[int]  # epochs completed by this process
    history: dict[str, list[float]]  # per completed epoch, aligned with ``epochs``
    batches: int  # training batches completed by this process
    saves: list[dict[str, Any]]  # checkpoint saves started, with the kill point if any
    artifacts: dict[str, int]  # files left in workdir (relative path -> bytes)
    stderr_tail: str
    final_weights_path: Path | None

    @property
    def killed(self) -> bool:
        return self.returncode == -signal.SIGKILL

    @property
    def completed(self) -> bool:
        return self.returncode == 0 and self.final_weights_path is not None

    def final_weights(self) -> list[np.ndarray]:
        """The model's weights at the end of a completed run (in ``model.get_weights()`` order)."""
        if self.final_weights_path is None:
            raise RuntimeError(f"the run in {self.workdir} did not finish (exit {self.returncode})")
        with np.load(self.final_weights_path) as data:
            return [data[f"w{i}"] for i in range(len(data.files))]

    def __str__(self) -> str:
        status = "killed by SIGKILL" if self.killed else f"exit {self.returncode}"
        start = "never started" if self.initial_epoch is None else (
            f"started with {self.initial_epoch} epochs done")
        # shown counted from 1, as Keras prints them; the fields stay 0-based
        ran = f"ran epochs {self.epochs[0] + 1}-{self.epochs[-1] + 1}" if self.epochs else (
            "completed no epoch")
        return f"{status} after {self.seconds:.1f} s: {start}, {ran}, {self.batches} batches in all"


class TrainingProcessError(RuntimeError):
    """The worker failed in a way nobody asked for; the message carries its stderr tail."""


def run_training(workdir: str | os.PathLike[str], epochs: int, *, task: dict[str, Any] | None = None,
                 model: dict[str, Any] | None = None, batch_size: int = 32, seed: int = 0,
                 backup_dir: str | None = None, backup_freq: str | int = "epoch",
                 delete_backup: bool = True, checkpoint: str | None = None, atomic: bool = False,
                 monitor: str = "val_loss", last_checkpoint: str | None = None,
                 kill_after_epochs: int | None = None, kill_after_batches: int | None = None,
                 kill_in_save: int | None = None, kill_phase: str = "during_write",
                 timeout: float = 300) -> RunResult:
    """Train ``build_model(make_task(**task), seed=seed, **model)`` for ``epochs`` in a child
    process, after :func:`set_determinism` with ``seed``; batches in a fixed order.

    Paths are relative to ``workdir``, which persists across calls so a second call can resume
    what a killed first call left. Callbacks, in order:

    - ``backup_dir``: ``keras.callbacks.BackupAndRestore`` (``save_freq=backup_freq``,
      ``delete_checkpoint=delete_backup``); restores on start if a backup exists.
    - ``last_checkpoint``: forgekit's :class:`~forgekit.training.checkpoints.AtomicCheckpoint` saved every
      epoch; if the file exists the run first resumes from it (model, optimizer, epoch).
    - ``checkpoint``: best-only checkpoint on ``monitor``, ``keras.callbacks.ModelCheckpoint``
      or, with ``atomic=True``, forgekit's ``AtomicCheckpoint``.

    Faults (a real ``SIGKILL`` of the child, sent by itself):
    ``kill_after_epochs``/``kill_after_batches`` count what *this* process completed;
    ``kill_in_save=k`` kills during the k-th save of ``checkpoint`` at ``kill_phase``, one of
    :data:`SAVE_PHASES`. ``"during_write"`` lets half of the bytes of the
    previous save (4 KiB for a first save) reach the file, then kills; ``"before_write"`` kills
    once the destination is open, before its first byte. ``ModelCheckpoint`` has no
    replace step, so the two ``*_replace`` phases need ``atomic=True``.

    Raises :class:`TrainingProcessError` (with the stderr tail) if the child exits abnormally
    without having been asked to die.
    """
    spec = RunSpec(epochs=epochs, task=task or {}, model=model or {}, batch_size=batch_size,
                   seed=seed, backup_dir=backup_dir, backup_freq=backup_freq,
                   delete_backup=delete_backup, checkpoint=checkpoint, atomic=atomic,
                   monitor=monitor, last_checkpoint=last_checkpoint,
                   kill_after_epochs=kill_after_epochs, kill_after_batches=kill_after_batches,
                   kill_in_save=kill_in_save, kill_phase=kill_phase)
    _validate(spec)
    workdir = Path(workdir).resolve()
    books = workdir / BOOKKEEPING
    books.mkdir(parents=True, exist_ok=True)
    run_id = len(list(books.glob("run-*.json")))
    config = books / f"run-{run_id}.json"
    config.write_text(json.dumps(asdict(spec), indent=1))
    log, err = books / f"run-{run_id}.jsonl", books / f"run-{run_id}.stderr"
    env = {**os.environ, **QUIET_ENV, "PYTHONHASHSEED": str(seed)}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(Path(__file__).resolve().parents[2]),
                                                      env.get("PYTHONPATH")]))
    started = time.perf_counter()
    with open(err, "wb") as stderr:
        proc = subprocess.run(
            [sys.executable, "-m", "forgekit.training._worker", str(config), str(log)],
            cwd=workdir, env=env, stdout=subprocess.DEVNULL, stderr=stderr, timeout=timeout,
            check=False)
    result = _collect(workdir, log, err, proc.returncode, time.perf_counter() - started)
    asked_to_die = any(v is not None for v in (kill_after_epochs, kill_after_batches, kill_in_save))
    if proc.returncode != 0 and not (result.killed and asked_to_die):
        raise TrainingProcessError(
            f"training process exited with {proc.returncode}:\n{result.stderr_tail}")
    return result


def _validate(spec: RunSpec) -> None:
    if spec.kill_in_save is not None:
        if spec.checkpoint is None:
            raise ValueError("kill_in_save needs a checkpoint to save")
        if spec.kill_phase not in SAVE_PHASES:
            raise ValueError(f"kill_phase must be one of {SAVE_PHASES}, got {spec.kill_phase!r}")
        if spec.kill_phase.endswith("_replace") and not spec.atomic:
            raise ValueError(f"ModelCheckpoint writes in place: it has no {spec.kill_phase!r}")


def _collect(workdir: Path, log: Path, err: Path, returncode: int, seconds: float) -> RunResult:
    events = []
    if log.exists():
        for line in log.read_text().splitlines():
            try:
                events.append(json.loads(line))
            except json.JSONDecodeError:  # a line cut short by the kill
                break
    epochs, history = [], {}
    initial_epoch, batches, saves, final = None, 0, [], None
    for event in events:
        kind = event["event"]
        if kind == "train_begin":
            initial_epoch = event["initial_epoch"]
        elif kind == "epoch_end":
            epochs.append(event["epoch"])
            for key, value in event["logs"].items():
                history.setdefault(key, []).append(value)
        elif kind == "batch_end":
            batches = event["batches"]
        elif kind == "save":
            saves.append({k: v for k, v in event.items() if k != "event"})
        elif kind == "done":
            final = workdir / event["weights"]
    tail = "\n".join(err.read_text(errors="replace").strip().splitlines()[-15:])
    artifacts = {
        str(p.relative_to(workdir)): p.stat().st_size
        for p in sorted(workdir.rglob("*"))
        if p.is_file() and BOOKKEEPING not in p.relative_to(workdir).parts
    }
    return RunResult(workdir, returncode, round(seconds, 2), initial_epoch, epochs, history,
                     batches, saves, artifacts, tail, final)


# ----------------------------------------------------------------------------------------------
# Plots


def plot_curves(ax: Axes, curves: dict[str, tuple[Any, Any]], *, title: str,
                xlabel: str = "epochs completed", ylabel: str = "loss (cross-entropy)",
                marks: dict[str, tuple[float, float]] | None = None,
                vline: tuple[float, str] | None = None, reference: str | None = None) -> Axes:
    """Draw labelled loss curves on ``ax``: ``curves`` maps a label to ``(x, y)``.

    Each curve gets its own line style and marker, so curves that coincide exactly stay
    distinguishable; ``reference`` names one curve drawn as a wide translucent band underneath
    the others. ``marks`` maps a label to one highlighted point; ``vline`` is ``(x, label)``
    for an event such as the resume point or the kill.
    """
    styles = [("-", "o"), ("--", "s"), (":", "D"), ("-.", "^")]
    for i, (label, (x, y)) in enumerate(curves.items()):
        if label == reference:
            ax.plot(x, y, linewidth=7, alpha=0.3, color="grey", label=label, zorder=1)
            continue
        line, marker = styles[i % len(styles)]
        # hollow markers shrinking curve by curve: points that coincide show as nested shapes
        ax.plot(x, y, linestyle=line, marker=marker if len(x) <= 60 else None,
                markersize=max(3.0, 9 - 2 * i), markerfacecolor="none", label=label, zorder=2)
    for label, (x, y) in (marks or {}).items():
        ax.plot([x], [y], marker="*", markersize=16, linestyle="none", color="black", label=label)
    if vline is not None:
        ax.axvline(vline[0], color="firebrick", linestyle="--", linewidth=1, label=vline[1])
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return ax
