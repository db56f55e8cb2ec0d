"""The registry of artifact kinds: for each kind, in one place, how it is recognised, the plain
Keras/TF call that loads it, what ``forgekit.load`` dispatches to, the fix for a wrong call and
how the probe reloads it. detect_format, load, doctor, the failure lab and the probe read it.

Adding a kind is one :class:`Kind` entry here plus its parser module in this package (a module
with ``matches(head)`` + ``inspect(path, size)`` for a file, ``matches_dir`` + ``inspect_dir``
for a folder). Also here: the naming policy of Keras 3, which picks its reader by file name.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Kind:
    """One kind of saved model.

    ``call`` is the line a learner types (``{path}`` is filled in); ``loader`` the name of the
    loader that reads it, one name across forgekit: the key of ``forgekit.keras_io.loading.
    LOADERS`` that ``forgekit.load`` uses and of the failure lab's plain call
    (``forgekit.diagnose.loaders.LOADERS``); ``None`` for a kind ``forgekit.load`` refuses.
    ``reload`` is how the probe reloads it, in words for its table.
    """

    name: str
    label: str  # in words, for reports
    parser: str | None  # module of forgekit.formats that recognises and reads it
    call: str
    loader: str | None
    reload: str
    extensions: tuple[str, ...] = ()  # name endings that promise this kind
    suffix: str = ""  # the ending Keras 3 needs to choose the right reader ("": none)
    needs_model: bool = False  # restores into a model built in code (pass model=)
    stores_config: bool = False  # holds a model config: custom objects and Lambda layers scanned
    one_file: bool = True  # written as one file an extension names; False: a folder or a prefix

    def how_to_load(self, path: str | os.PathLike[str], signatures: list[str] | None = None) -> str:
        """The plain call that loads an artifact of this kind at ``path`` (a copyable line)."""
        call = self.call.format(path=os.fspath(path))
        if self.name == "savedmodel" and signatures:
            call += (f"  # or keras.layers.TFSMLayer({os.fspath(path)!r}, "
                     f"call_endpoint={endpoint_for(signatures)!r})")
        return call

    def forgekit_call(self, path: str | os.PathLike[str]) -> str:
        """The ``forgekit.load`` line for this kind (``model=`` for weights and checkpoints)."""
        return f"forgekit.load({os.fspath(path)!r}{', model=model' if self.needs_model else ''})"


KINDS: dict[str, Kind] = {kind.name: kind for kind in (
    Kind("keras", "Keras native .keras zip", "keras_zip",
         "keras.models.load_model({path!r})", "load_model",
         "keras.models.load_model(path)", (".keras",), ".keras", stores_config=True),
    Kind("savedmodel", "SavedModel folder", "savedmodel",
         "tf.saved_model.load({path!r})", "saved_model_load",
         "tf.saved_model.load(path)", (".pb",), one_file=False),
    Kind("h5_model", "legacy HDF5 whole model", "hdf5",
         "keras.models.load_model({path!r})", "load_model",
         "keras.models.load_model(path)", (".h5", ".hdf5"), ".h5", stores_config=True),
    Kind("weights_h5", "HDF5 weights only", "hdf5",
         "model.load_weights({path!r})  # model = the same architecture, rebuilt",
         "load_weights",
         "same architecture from code, compile, model.load_weights(path)",
         (".weights.h5", ".h5", ".hdf5"), ".weights.h5", needs_model=True),
    Kind("tf_checkpoint", "tf.train.Checkpoint", "checkpoint",
         "tf.train.Checkpoint(model=model, optimizer=model.optimizer).restore({path!r})",
         "checkpoint_restore",
         "same architecture from code, compile, tf.train.Checkpoint(...).restore",
         (".index",), needs_model=True, one_file=False),
    Kind("tflite", "TFLite flatbuffer", "flatbuffer",
         # LiteRT: TF 2.21 deprecates tf.lite.Interpreter in its favour; the import makes the
         # line runnable as it is printed
         "from ai_edge_litert.interpreter import Interpreter; Interpreter(model_path={path!r})",
         "tflite",
         "ai_edge_litert.interpreter.Interpreter(model_path=path)", (".tflite",)),
    Kind("json_architecture", "JSON architecture (no weights)", "json_config",
         "keras.models.model_from_json(open({path!r}).read())", "model_from_json",
         "keras.models.model_from_json(text)", (".json",), stores_config=True),
    Kind("serving_base", "TF Serving base folder (numbered versions)", "serving_base",
         # path = the latest version's folder (FormatInfo.load_path)
         "tf.saved_model.load({path!r})", None, "tf.saved_model.load(path/<latest>)",
         one_file=False),
    Kind("unknown", "unknown", None, "", None, "", one_file=False),
)}

DATA_SHARD = re.compile(r"\.data-(\d{5})-of-(\d{5})$")  # a checkpoint's data file


def kind(name: str) -> Kind:
    """The registry entry of ``name`` (``"unknown"`` for a name it does not hold)."""
    return KINDS.get(name, KINDS["unknown"])


def how_to_load(name: str, path: str | os.PathLike[str], signatures: list[str] | None = None) -> str:
    """The plain Keras/TF call that loads an artifact of kind ``name`` at ``path``."""
    return kind(name).how_to_load(path, signatures)


def endpoint_for(signatures: list[str]) -> str:
    """The SavedModel signature to call: ``serve`` when present, else ``serving_default``."""
    # model.export's "serve" returns a tensor; "serving_default" returns a dict of outputs.
    return next((s for s in ("serve", "serving_default") if s in signatures), signatures[0])


def extension_kinds(path: str | os.PathLike[str]) -> tuple[str, ...]:
    """The kinds a file name's extension promises (empty when it promises nothing).

    The longest matching ending decides: ``m.weights.h5`` promises weights only, ``m.h5`` a
    legacy model or weights.
    """
    name = Path(path).name.lower()
    if DATA_SHARD.search(name):
        return ("tf_checkpoint",)
    endings = [e for k in KINDS.values() for e in k.extensions if name.endswith(e)]
    if not endings:
        return ()
    longest = max(endings, key=len)
    return tuple(k.name for k in KINDS.values() if longest in k.extensions)


def keras_suffix(name: str, keras2: bool = False) -> str:
    """The file name ending Keras 3 needs to pick the right reader for kind ``name``.

    ``keras2`` (:attr:`FormatInfo.keras2`): Keras 2 weights need a plain ``.h5`` name.
    """
    if name == "weights_h5" and keras2:
        return ".h5"
    return kind(name).suffix


def keras_reads_name(name: str, kind_name: str, keras2: bool = False, *,
                     weights: bool = False) -> bool:
    """Would Keras 3 read content of ``kind_name`` through this file name (or path string)?

    Keras 3 chooses its reader from the path *text*, not the content (so ``"m.keras/"`` fails):
    ``load_model`` reads ``.keras`` as a zip and ``.h5`` / ``.hdf5`` as legacy HDF5;
    ``load_weights`` (``weights=True``) also reads ``.keras``, sends ``.weights.h5`` to its
    Keras 3 weights reader and other ``.h5`` names to its legacy one (Keras 2 weights, legacy
    models). ``keras2`` is :attr:`FormatInfo.keras2`.
    """
    legacy = name.endswith((".h5", ".hdf5"))
    if kind_name == "keras":
        return name.endswith(".keras")
    if kind_name == "h5_model" and not weights:
        return legacy
    if kind_name == "h5_model" or (kind_name == "weights_h5" and keras2):
        return legacy and not name.endswith(".weights.h5")
    return kind_name == "weights_h5" and name.endswith(".weights.h5")
