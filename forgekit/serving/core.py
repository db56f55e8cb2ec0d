"""What both protocols share: the served models, found by name, version or label.

The lookups and their error messages follow TF Serving's ``ServerCore`` and
``GetModelStatusImpl``, so the REST and gRPC front ends report the same failures.
``configure`` applies a model_config_list (at start-up, and on every config reload) with
TF Serving's rule for labels.
"""

from __future__ import annotations

import gc
import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from forgekit.serving.error_codes import ServingError, invalid, not_found
from forgekit.serving.versions import LoadRetries, ModelConfig, ModelVersions, VersionStatus

log = logging.getLogger("forgekit.serving")

# TF Serving's --enable_signature_method_name_check, process-wide as its
# SetSignatureMethodNameCheckFeature is. Off by default: tf.saved_model.save writes every
# signature with the predict method name, and TF Serving still classifies and regresses with it.
_method_name_check = False


def set_method_name_check(enabled: bool) -> None:
    """Turn the SignatureDef method-name check on or off for every server in this process."""
    global _method_name_check
    _method_name_check = bool(enabled)


def method_name_check() -> bool:
    """Whether signatures must carry the method name of the API that calls them."""
    return _method_name_check


class ServerCore:
    """The served models, by name. Names are only ever dictionary keys, never paths.

    ``loader`` turns a version directory into a servable (a SavedModelServable in the
    server). The ``models`` mapping is replaced, never mutated, when the config changes.
    """

    def __init__(self, loader: Callable[[Path], Any],
                 models: Mapping[str, ModelVersions[Any]] | None = None, *,
                 retries: LoadRetries | None = None) -> None:
        self.loader = loader
        self.retries = retries or LoadRetries()
        self.models: Mapping[str, ModelVersions[Any]] = dict(models or {})
        # the config-file watcher and a gRPC reload may configure at the same time
        self._configure_lock = threading.Lock()

    def configure(self, configs: Sequence[ModelConfig], *,
                  allow_labels_for_unavailable_models: bool = False) -> list[str]:
        """Serve exactly ``configs``; returns the names of models that are new.

        Labels must point at an AVAILABLE version; with the flag, a label may also point at
        an unavailable version if it is new or unchanged (TF Serving's
        ``UpdateModelVersionLabelMap``). A refused config changes nothing. New models are not
        polled here (see :meth:`poll`); removed ones are unloaded.
        """
        with self._configure_lock:
            return self._configure(configs, allow_labels_for_unavailable_models)

    def check_labels(self, configs: Sequence[ModelConfig], *,
                     allow_labels_for_unavailable_models: bool = False) -> None:
        """Raise FAILED_PRECONDITION if ``configs`` assign a label TF Serving would refuse.

        TF Serving runs this check (``UpdateModelVersionLabelMap``) on every read of its config
        file, an unchanged one too: a version its policy unloaded since keeps its labels, and
        the re-read is refused and logged at each interval without the flag.
        """
        self._check_labels(self.models, configs, allow_labels_for_unavailable_models)

    @staticmethod
    def _check_labels(current: Mapping[str, ModelVersions[Any]], configs: Sequence[ModelConfig],
                      allow_labels: bool) -> None:
        for config in configs:
            model = current.get(config.name)
            available = model.available() if model else set()
            old_labels = model.labels if model else {}
            for label, version in sorted(config.labels.items()):
                unchanged = old_labels.get(label, version) == version
                if version not in available and not (allow_labels and unchanged):
                    raise ServingError(
                        "FAILED_PRECONDITION",
                        f"Request to assign label to version {version} of model "
                        f"{config.name}, which is not currently available for inference")

    def _configure(self, configs: Sequence[ModelConfig], allow_labels: bool) -> list[str]:
        current = self.models
        self._check_labels(current, configs, allow_labels)
        models, added = {}, []
        for config in configs:
            model = current.get(config.name)
            if model is None:
                model = ModelVersions(config, self.loader, self.retries)
                added.append(config.name)
            elif model.config != config:
                model.reconfigure(config)
            models[config.name] = model
        self.models = models
        removed = sorted(set(current) - set(models))
        for name in removed:
            log.info("Removing model %s", name)
            current[name].unload_all(collect=False)
        if removed:
            gc.collect()  # once for the whole reload, not once per version
        return added

    def poll(self, names: Sequence[str]) -> None:
        """Load the versions of the named models now (new models, after a reload)."""
        for name in names:
            model = self.models.get(name)
            if model is None:  # a concurrent reload may have removed it already
                continue
            try:
                model.poll()
            except Exception:  # the config is applied: one model must not fail the others
                log.exception("Loading the versions of model %s failed", name)

    def servable(self, name: str, version: int | None = None, label: str | None = None
                 ) -> tuple[int, Any]:
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
