"""Checker for lesson 00's exercise: save a model as one file that keeps everything."""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path

from forgekit.artifacts import hdf5
from forgekit.artifacts.detect import HEAD_BYTES
from forgekit.exercises import NOT_ANSWERED, Feedback, correct, wrong


def check_first_save(my_file: str | os.PathLike[str] | None) -> Feedback:
    """Is ``my_file`` a Keras 3 native whole-model file (architecture + weights + optimizer)?"""
    if my_file is None:
        return NOT_ANSWERED
    path = Path(my_file)
    if not path.exists():
        return wrong(f"There is no file at {path}. Call model.save(...) with that path first.")
    if path.is_dir():
        return wrong(f"{path} is a folder. Keras 3 saves a whole model as one `.keras` file; "
                     "folders are for model.export() (SavedModel), which serving uses.")
    with open(path, "rb") as fh:
        head = fh.read(HEAD_BYTES)
    if hdf5.matches(head):
        kind = ("weights only (no architecture, no optimizer)" if path.name.endswith(".weights.h5")
                else "legacy HDF5, which Keras 3 still writes but no longer recommends")
        return wrong(f"{path.name} is HDF5: {kind}. Use a name ending in `.keras`.")
    if not zipfile.is_zipfile(path):
        return wrong(f"{path.name} is neither a .keras zip nor HDF5. Did you write it with model.save?")
    with zipfile.ZipFile(path) as zf:
        names = set(zf.namelist())
        if not {"config.json", "metadata.json", "model.weights.h5"} <= names:
            return wrong(f"{path.name} is a zip, but not a Keras model file: it holds {sorted(names)}.")
        version = json.loads(zf.read("metadata.json")).get("keras_version", "?")
    return correct(f"{path.name} is a native .keras file written by Keras {version}: "
                   "config.json (architecture), model.weights.h5 (weights and optimizer state) and "
                   "metadata.json in one zip.")
