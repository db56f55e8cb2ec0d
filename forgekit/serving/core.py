"""What both protocols share: finding a model's servable by name, version or label.

The lookups and their error messages follow TF Serving's ``ServerCore`` and
``GetModelStatusImpl``, so the REST and gRPC front ends report the same failures.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from forgekit.serving.errors import invalid, not_found
from forgekit.serving.servable import SavedModelServable
from forgekit.serving.versions import ModelVersions, VersionStatus


class ServerCore:
    """The served models, by name. Names are only ever dictionary keys, never paths."""

    def __init__(self, models: Mapping[str, ModelVersions[SavedModelServable]]) -> None:
        self.models = dict(models)

    def servable(self, name: str, version: int | None = None, label: str | None = None
                 ) -> tuple[int, SavedModelServable]:
        """The servable a request addresses: latest, a version number, or a label."""
        if not name:
            raise invalid("ModelSpec has no name specified.")
        if version is not None and label is not None:
            raise invalid(f"Both model version ({version}) and model version label ({label}) "
                          "cannot be supplied.")
        model = self.models.get(name)
        if label is not None:
            if model is None:
                raise invalid(f"Unrecognized servable version label: {label}")
            version = model.resolve_label(label)
        if model is None:
            request = f"Latest({name})" if version is None else f"Specific({name}, {version})"
            raise not_found(f"Servable not found for request: {request}")
        return model.lookup(version)

    def status(self, name: str, version: int | None = None, label: str | None = None
               ) -> list[VersionStatus]:
        """Version states, newest first (a label is resolved to its version)."""
        if not name:
            raise invalid("Missing model name in request.")
        model = self.models.get(name)
        if model is not None and label is not None:
            version = model.resolve_label(label)
        if model is None:
            if label is not None:
                raise invalid(f"Unrecognized servable version label: {label}")
            if version is None:
                raise not_found(f"Could not find any versions of model {name}")
            raise not_found(f"Could not find version {version} of model {name}")
        return model.statuses(version)

    def metadata(self, name: str, version: int | None = None, label: str | None = None
                 ) -> dict[str, Any]:
        """GetModelMetadata as TF Serving's REST API prints it."""
        if not name:
            raise invalid("Missing model name in request.")
        number, servable = self.servable(name, version, label)
        return {
            "model_spec": {"name": name, "signature_name": "", "version": str(number)},
            "metadata": {"signature_def": servable.metadata_json()},
        }


def status_json(statuses: list[VersionStatus]) -> dict[str, Any]:
    """GetModelStatusResponse in TF Serving's JSON form (int64 versions as strings)."""
    return {"model_version_status": [
        {"version": str(s.version), "state": s.state,
         "status": {"error_code": s.error_code, "error_message": s.error_message}}
        for s in statuses]}
