"""The course map: one entry per lesson, in order. README and lesson 00 are checked against it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from forgekit.table import Table


@dataclass(frozen=True)
class Lesson:
    notebook: str
    title: str
    summary: str
    # to read and run at workshop size: a learner review's timing where the lesson had one since
    # its last rewrite, else the estimate from its length (120 prose words or 8 code lines a minute)
    minutes: int

    @property
    def number(self) -> str:
        return self.notebook[:2]


LESSONS: tuple[Lesson, ...] = (
    Lesson("00_start_here", "Start here",
           "Check your machine, save a model with model.save, reload it and prove it is the same model.", 15),
    Lesson("01_whole_model_formats", "Whole-model formats",
           "SavedModel export for serving, and the two traps of legacy H5 (short loss aliases, the popped optimizer), each with its plain Keras fix.", 25),
    Lesson("02_weights_and_architecture", "Weights and architecture",
           "A Keras 3 .weights.h5 is as big as the .keras (Adam's slots, measured); load it with its optimizer state; JSON in git.", 22),
    Lesson("03_checkpoints_and_resume", "Checkpoints and resume",
           "Kill a training script mid-save, resume it with BackupAndRestore, write a save no kill breaks.", 24),
    Lesson("04_tflite", "TFLite",
           "Convert with the plain TFLiteConverter, run it in LiteRT, and write the int8 input quantization a cast gets wrong.", 22),
    Lesson("05_wrong_path_failures", "The code a .keras file needs",
           "A .keras stores a custom layer by its registered name: load an unregistered class, a Lambda and a renamed class.", 22),
    Lesson("06_serving_incident", "The serving incident",
           "Deploy a retrained model the usual way, watch the old one keep answering, catch it with two HTTP calls, roll back.", 22),
    Lesson("07_deploying_with_tf_serving", "Deploying with TF Serving",
           "Write models.config by hand, watch a publish leave stable on an unloaded version, catch it over HTTP.", 22),
    Lesson("08_audit_trail", "Audit trail",
           "Which bytes each deployment should serve, a check of what it really serves, and one SQL join from version to run.", 22),
    Lesson("09_cross_language", "Cross-language loading",
           "Run a SavedModel from C through the TF C API, crash a plain C caller with a name Keras chose, read the names yourself.", 22),
    Lesson("10_explorer_and_claims", "The article's claims, re-measured",
           "Re-measure the article's claims on your TensorFlow, see a verdict move once it gets a control, audit one yourself.", 21),
    Lesson("11_migrating_keras2", "Migrating Keras 2 models",
           "Keras 2 .h5 and SavedModel files moved to Keras 3 with Adam's state, by hand and with forgekit migrate, proven.", 24),
)


def available(notebooks_dir: str | Path | None = None) -> set[str]:
    """Names of the lessons whose notebook exists in ``notebooks_dir``."""
    folder = Path(notebooks_dir) if notebooks_dir else Path(__file__).resolve().parents[2] / "notebooks"
    return {p.stem for p in folder.glob("*.ipynb")}


class CourseMap:
    """The lesson list with availability; renders as a table in a notebook."""

    def __init__(self, notebooks_dir: str | Path | None = None) -> None:
        self.ready = available(notebooks_dir)

    def rows(self) -> list[tuple[Lesson, bool]]:
        return [(lesson, lesson.notebook in self.ready) for lesson in LESSONS]

    def table(self) -> Table:
        return Table(["#", "lesson", "notebook", "what you will see", "minutes", ""],
                     [[lsn.number, lsn.title, f"{lsn.notebook}.ipynb", lsn.summary,
                       lsn.minutes, "✓ ready" if ok else "coming"] for lsn, ok in self.rows()],
                     max_width=90)

    def __str__(self) -> str:
        return str(self.table())

    __repr__ = __str__

    def _repr_html_(self) -> str:
        return self.table()._repr_html_()


def course_map(notebooks_dir: str | Path | None = None) -> CourseMap:
    """The course map, marking which lessons are ready in this checkout."""
    return CourseMap(notebooks_dir)
