"""Serve SavedModels the way TensorFlow Serving does, and talk to any TF Serving server.

* :class:`ModelServer` runs ``forgekit serve`` (TF Serving's flags, REST and gRPC APIs,
  version polling, policies and labels) in a subprocess, as a context manager.
* :class:`Client` calls status, metadata, predict, classify and regress over REST or gRPC,
  against forgekit's server or a real tensorflow/serving container (``$FORGEKIT_SERVING_URL``).
* :func:`export_demo_model` and :func:`export_half_plus_two` write small SavedModels to serve
  (the latter is TF Serving's own test model, with classify and regress signatures;
  :func:`export_half_plus_two_tf2` is its native TF2 form, written by ``tf.saved_model.save``).
* :class:`InProcessServer` is the same server on a thread of the calling process (lessons).
* :func:`publish` deploys a Keras model as a new version, atomically, with a canary and a
  fingerprint; :func:`verify_deployment` checks what a server answers against that record;
  :mod:`forgekit.serving.rollback` serves an earlier version again through a ``models.config``.

Importing this package does not import TensorFlow: names resolve lazily, and only the gRPC
client and the server itself need it. Reference: docs/serving.md.
"""

from __future__ import annotations

from forgekit._lazy import lazy_names

_LAZY = {
    "Client": "forgekit.serving.client",
    "ServingError": "forgekit.serving.error_codes",
    "ModelServer": "forgekit.serving.process",
    "free_port": "forgekit.serving.process",
    "export_demo_model": "forgekit.serving.demo",
    "export_half_plus_two": "forgekit.serving.demo",
    "export_half_plus_two_tf2": "forgekit.serving.demo",
    "main": "forgekit.serving.server",
    "InProcessServer": "forgekit.serving.process",
    "publish": "forgekit.serving.deploy",
    "record_for": "forgekit.serving.deploy",
    "load_record": "forgekit.serving.record",
    "write_model_config": "forgekit.serving.config",
    "ModelEntry": "forgekit.serving.config",
    "PublishRecord": "forgekit.serving.record",
    "DeployError": "forgekit.serving.record",
    "verify_deployment": "forgekit.serving.verify",
    "VerificationReport": "forgekit.serving.verify",
}

__all__ = sorted(_LAZY)
__getattr__, __dir__ = lazy_names(__name__, _LAZY)
