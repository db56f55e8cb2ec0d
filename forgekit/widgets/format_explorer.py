"""Format explorer: pick a model size, a format and include-optimizer; it saves for real, reloads,
and shows the files on disk, the size against every other format, and what survived.

The round trip is :func:`forgekit.measure.probe.roundtrip`, the probe lessons 01 and 02 use; the
other formats' sizes are measured by saving the same model with :func:`forgekit.save`, once per
(size, optimizer) setting, so a second click at the same size only pays for its own format.
"""

from __future__ import annotations

import html
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from forgekit.table import Table, human_bytes
from forgekit.widgets.base import Explorer, WidgetError, choose, figure_png


@dataclass(frozen=True)
class Format:
    """A format the explorer writes: its probe kind, label, and what include_optimizer does."""

    kind: str
    label: str
    call: str  # the plain Keras/TF call that writes it
    switch: str  # "honoured", "ignored" (accepted, not used) or "none" (no such argument)
    why: str = ""  # for "ignored" / "none": why the switch changes nothing


FORMATS: dict[str, Format] = {f.kind: f for f in (
    Format("keras", ".keras", "model.save('model.keras', include_optimizer=...)", "ignored",
           "model.save() accepts include_optimizer, but Keras 3 passes it only to the legacy "
           ".h5 writer: a .keras file is written the same either way"),
    Format("h5_model", "legacy .h5", "model.save('model.h5', include_optimizer=...)",
           "honoured"),
    Format("weights_h5", ".weights.h5", "model.save_weights('model.weights.h5')", "none",
           "model.save_weights() has no include_optimizer argument"),
    Format("savedmodel", "SavedModel export", "model.export('export')", "none",
           "model.export() has no include_optimizer argument: it writes an inference graph"),
    Format("json_architecture", "JSON architecture", "open('model.json', 'w').write("
           "model.to_json())", "none", "model.to_json() writes the architecture, no state"),
    Format("tflite", "TFLite", "tf.lite.TFLiteConverter.from_saved_model('export').convert()",
           "none", "the converter reads an export: an inference-only flatbuffer"),
)}
SIZES = (8, 16, 32, 64, 128, 256, 512)  # hidden units per layer offered by the slider
FEATURES = 8  # model inputs


@dataclass
class FormatRun:
    """One click of "Save and reload": what was written, how big, and what came back."""

    units: int
    parameters: int
    format: Format
    include_optimizer: bool
    path: Path
    files: list[tuple[str, int]]  # (path relative to the artifact, bytes)
    probe: Any  # forgekit.measure.probe.ProbeResult
    sizes: dict[str, int]  # format label -> bytes, same model and optimizer setting
    seconds: float
    notes: list[str] = field(default_factory=list)

    @property
    def size_bytes(self) -> int:
        """Bytes on disk of the artifact written by this run."""
        return self.probe.size_bytes

    @property
    def optimizer_note(self) -> str:
        """What include_optimizer did for this format, stated next to what was measured."""
        f = self.format
        restored = {True: "restored", False: "not restored", None: "n/a"}[
            self.probe.optimizer_restored]
        if f.switch == "honoured":
            head = f"include_optimizer={self.include_optimizer}: passed to {f.label} and used"
        elif f.switch == "ignored":
            head = f"include_optimizer={self.include_optimizer}: IGNORED by {f.label} ({f.why})"
        else:
            head = f"include_optimizer: does not apply to {f.label} ({f.why})"
        detail = f" ({self.probe.optimizer_detail})" if self.probe.optimizer_detail else ""
        return f"{head}; measured optimizer state after reload: {restored}{detail}"

    def survived(self) -> Table:
        """What came back, one row per column of the probe (n/a says why it cannot apply)."""
        from forgekit.measure.probe import ProbeMatrix

        row = ProbeMatrix([self.probe]).rows()[0]
        table = Table(["what", "after the round trip"],
                      title=f"What survived: {self.format.label}, reloaded with "
                            f"{self.probe.reloaded_with}", max_width=90)
        for column, cell in zip(ProbeMatrix.COLUMNS[1:7], row[1:7], strict=True):
            why = self.probe.not_applicable.get(column)
            table.add(column, f"{cell} ({why})" if why and cell == "n/a" else cell)
        table.notes = list(self.probe.notes)
        return table

    def tree(self) -> str:
        """The artifact's files with their sizes, as ``forgekit.paths.tree`` draws them."""
        from forgekit.paths import tree

        return tree(self.path)

    def figure(self) -> Any:
        """Bar chart of bytes on disk per format at this size; this run's format highlighted."""
        from matplotlib.figure import Figure

        from forgekit.plots import size_bars

        fig = Figure(figsize=(6.5, 0.45 * len(self.sizes) + 1.6))
        ax = fig.subplots()
        size_bars(self.sizes, ax=ax, title=(
            f"Bytes on disk per format: {self.units} hidden units, {self.parameters:,} "
            f"parameters, include_optimizer={self.include_optimizer}"))
        for label, bar in zip(self.sizes, ax.patches, strict=False):
            if label == self.format.label:
                bar.set_color("#e45756")
        return fig

    def __str__(self) -> str:
        return "\n\n".join([
            f"{self.format.label}: {human_bytes(self.size_bytes)} at {self.path.name} "
            f"({self.seconds:.2f} s)", self.optimizer_note, self.tree(), str(self.survived())])

    def _repr_html_(self) -> str:
        return f"<p>{html.escape(self.optimizer_note)}</p>" + self._details_html()

    def _details_html(self) -> str:
        """The on-disk tree and what survived (the view shows the optimizer note above)."""
        return f"<pre>{html.escape(self.tree())}</pre>" + self.survived()._repr_html_()


class FormatExplorer(Explorer):
    """Save a model for real in a chosen format and see what is on disk and what survives.

    Args:
        workdir: a writable folder; the explorer writes under ``workdir/formats/`` only.
        units: the initial hidden units per layer (the size slider).
        formats: the format kinds offered (default: all of :data:`FORMATS`).
        samples: training rows of the tiny fit that gives the optimizer its state.
    """

    title = "Format explorer"
    folder = "formats"

    def __init__(self, workdir: str | os.PathLike[str], *, units: int = 32,
                 formats: list[str] | None = None, samples: int = 64) -> None:
        kinds = list(formats) if formats is not None else list(FORMATS)
        offered = {k: FORMATS[choose(k, FORMATS, "format", "FormatExplorer.run")] for k in kinds}
        units = self._check_units(units)
        super().__init__(workdir)  # only once the arguments are good: it replaces the old one
        self.formats = offered
        self.units = units
        self.samples = samples
        self.history: list[FormatRun] = []
        self._models: dict[int, Any] = {}
        self._sizes: dict[tuple[int, bool], dict[str, int]] = {}

    @staticmethod
    def _check_units(units: int) -> int:
        if not isinstance(units, int) or units < 1:
            raise WidgetError(f"units={units!r} is not a positive number of hidden units",
                              expected="an int such as 32", fix="FormatExplorer.run(units=32)")
        return units

    # ------------------------------------------------------------------ logic

    def model(self, units: int) -> Any:
        """The compiled, briefly trained model of that size (cached: the same one each time)."""
        if units not in self._models:
            import keras
            import numpy as np

            def dense(n: int, i: int, activation: str | None = None) -> Any:
                # seeded per layer: the same weights every time, without touching the
                # kernel's global random state
                return keras.layers.Dense(n, activation=activation,
                                          kernel_initializer=keras.initializers.GlorotUniform(
                                              seed=units * 10 + i))

            model = keras.Sequential([keras.Input((FEATURES,), name="x"),
                                      dense(units, 0, "relu"), dense(units, 1, "relu"),
                                      dense(2, 2)], name=f"mlp_{units}")
            # a loss object: the string "mse" trips Keras 3's legacy .h5 reader (lesson 05's
            # trap), which would hide what include_optimizer does
            model.compile(optimizer="adam", loss=keras.losses.MeanSquaredError())
            rng = np.random.default_rng(units)
            x = rng.normal(size=(self.samples, FEATURES)).astype("float32")
            model.fit(x, x[:, :2] * 2.0, epochs=1, batch_size=32, verbose=0)  # optimizer state
            self._models[units] = model
        return self._models[units]

    def run(self, units: int | None = None, fmt: str = "keras",
            include_optimizer: bool = True) -> FormatRun:
        """Save the ``units``-sized model as ``fmt``, reload it, measure; returns a FormatRun.

        ``fmt`` is a kind (``"keras"``, ``"h5_model"``, ...) or its label (``".keras"``).
        """
        from forgekit.measure.probe import roundtrip
        from forgekit.quiet import quiet_absl

        started = time.perf_counter()
        units = self._check_units(self.units if units is None else units)
        kind = choose(fmt, self.formats, "format", "FormatExplorer.run")
        spec = self.formats[kind]
        others = [k for k in self.formats if k != kind
                  and self.formats[k].label not in self._sizes.get((units, include_optimizer), {})]
        total = 2 + len(others)
        self._step(0, total, f"building and training the {units}-unit model")
        model = self.model(units)
        where = self.root / f"u{units}-{'opt' if include_optimizer else 'noopt'}" / kind
        shutil.rmtree(where, ignore_errors=True)  # a re-run writes afresh
        self._step(1, total, f"saving and reloading {spec.label}")
        kwargs = {"include_optimizer": include_optimizer} if spec.switch != "none" else {}
        with quiet_absl():  # Keras's legacy-HDF5 notices; the probe's notes say what matters
            probe = roundtrip(model, kind, where, save_kwargs=kwargs)
        sizes = self._sizes.setdefault((units, include_optimizer), {})
        sizes[spec.label] = probe.size_bytes
        for i, other in enumerate(others, start=2):
            self._step(i, total, f"measuring {self.formats[other].label} for the size chart")
            sizes[self.formats[other].label] = self._measure(model, other, units,
                                                             include_optimizer)
        ordered = {f.label: sizes[f.label] for f in self.formats.values() if f.label in sizes}
        run = FormatRun(units, int(model.count_params()), spec, include_optimizer, probe.path,
                        _files(probe.path), probe, ordered, time.perf_counter() - started)
        self.history.append(run)
        self._step(total, total, f"done in {run.seconds:.2f} s: {spec.label}, "
                                 f"{human_bytes(run.size_bytes)}")
        return run

    def _measure(self, model: Any, kind: str, units: int, include_optimizer: bool) -> int:
        """Bytes of ``model`` saved as ``kind`` (written, measured, removed)."""
        from forgekit.keras_io.saving import save
        from forgekit.measure.probe import _NAMES
        from forgekit.quiet import quiet_absl

        folder = self.root / "sizes" / f"{units}-{include_optimizer}-{kind}"
        shutil.rmtree(folder, ignore_errors=True)
        kwargs = ({"include_optimizer": include_optimizer}
                  if self.formats[kind].switch != "none" else {})
        with quiet_absl():
            size = save(model, folder / _NAMES[kind], kind=kind, **kwargs).size_bytes
        shutil.rmtree(folder, ignore_errors=True)
        return size

    # ------------------------------------------------------------------ view

    def _build_ui(self) -> Any:
        import ipywidgets as w

        sizes = sorted({*SIZES, self.units})
        wide = {"description_width": "initial"}
        self.size_slider = w.SelectionSlider(options=sizes, value=self.units,
                                             description="hidden units", style=wide)
        self.format_picker = w.Dropdown(
            options=[(f.label, k) for k, f in self.formats.items()], description="format")
        self.optimizer_box = w.Checkbox(value=True, description="include_optimizer")
        self.button = w.Button(description="Save and reload", button_style="primary",
                               icon="floppy-o")
        self.note = w.HTML()
        self.result = w.HTML()
        self.chart = w.Image(format="png", layout=w.Layout(max_width="560px"))
        self.button.on_click(self._clicked)
        return w.VBox([
            w.HBox([self.size_slider, self.format_picker, self.optimizer_box]),
            w.HBox([self.button, *self._status_widgets()]),
            self.note, w.HBox([self.result, self.chart])])

    def _clicked(self, _button: Any = None) -> None:
        self.button.disabled = True
        try:
            self._run_safely(
                lambda: self.run(self.size_slider.value, self.format_picker.value,
                                 self.optimizer_box.value),
                self._show, self._fail)
        finally:
            self.button.disabled = self.closed

    def _show(self, run: FormatRun) -> None:
        self.note.value = (f"<b>{html.escape(run.format.call)}</b> — "
                           f"{html.escape(run.optimizer_note)}")
        self.result.value = run._details_html()
        self.chart.value = figure_png(run.figure())

    def _fail(self, shown: str) -> None:
        self.note.value, self.result.value = "", shown


def _files(path: Path) -> list[tuple[str, int]]:
    """(relative path, bytes) of every file of an artifact (one file or a folder)."""
    if path.is_file():
        return [(path.name, path.stat().st_size)]
    return [(p.relative_to(path).as_posix(), p.stat().st_size)
            for p in sorted(path.rglob("*")) if p.is_file()]
