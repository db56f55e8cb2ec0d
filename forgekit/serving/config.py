"""Command-line flags (tensorflow_model_server's names and defaults) and model_config_list files.

``forgekit serve`` accepts the flags the course uses from ``tensorflow_model_server``, with
the same names, defaults and meaning, in either ``--flag=value`` or ``--flag value`` form.
Differences are deliberate and documented in docs/serving.md: servers bind 127.0.0.1 unless
``--grpc_host`` / ``--rest_api_host`` say otherwise, and request sizes are bounded. Flags that
exist only here are named ``--forgekit_*`` (or say "forgekit only" in their help), so a command
line without them is one ``tensorflow_model_server`` accepts.

:func:`write_model_config` writes a ``models.config`` a server reads (built with the official
protos and parsed back the way the server parses it); :func:`read_model_config` reads one.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from forgekit.serving.error_codes import ServingError
from forgekit.serving.versions import ModelConfig, VersionPolicy

DEFAULT_MAX_REQUEST_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True)
class ServerOptions:
    """Parsed flags. ``rest_api_port == 0`` disables REST, as in TF Serving."""

    port: int = 8500
    grpc_host: str = "127.0.0.1"
    rest_api_port: int = 0
    rest_api_host: str = "127.0.0.1"
    rest_api_num_threads: int = 32
    rest_api_timeout_in_ms: int = 30000
    grpc_max_threads: int = 16
    model_name: str = "default"
    model_base_path: str = ""
    model_config_file: str = ""
    model_config_file_poll_wait_seconds: int = 0
    file_system_poll_wait_seconds: int = 1
    forgekit_poll_interval_seconds: float = 0.0
    saved_model_tags: str = "serve"
    allow_version_labels_for_unavailable_models: bool = False
    enable_signature_method_name_check: bool = False
    max_num_load_retries: int = 5
    load_retry_interval_micros: int = 60 * 1000 * 1000
    max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES

    @property
    def file_system_poll_s(self) -> float:
        """Seconds between base-path scans (0: scan once), after the forgekit override."""
        return self._fast(self.file_system_poll_wait_seconds)

    @property
    def model_config_poll_s(self) -> float:
        """Seconds between re-reads of the model config (0: read once), after the override."""
        return self._fast(self.model_config_file_poll_wait_seconds)

    def _fast(self, seconds: int) -> float:
        # The override changes how often, never whether: a 0 (once) stays 0.
        if seconds > 0 and self.forgekit_poll_interval_seconds > 0:
            return self.forgekit_poll_interval_seconds
        return float(seconds)


def _bool(text: str) -> bool:
    if text.lower() in ("1", "true", "yes"):
        return True
    if text.lower() in ("0", "false", "no"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def _int(text: str) -> int:
    """An integer flag, as TF Serving parses it: ``0.5`` is refused, not rounded."""
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected an integer, got {text!r} (tensorflow_model_server takes whole seconds; "
            "for a faster poll in a lesson or test use --forgekit_poll_interval_seconds)"
        ) from None


def _count(text: str) -> int:
    value = _int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value}")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text!r}")
    return value


def _positive(text: str) -> int:
    """An int flag that must be at least 1 (threads, bytes): 0 would refuse every request."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The ``forgekit serve`` flag parser."""
    p = argparse.ArgumentParser(
        prog="forgekit serve",
        description="A local model server speaking TF Serving's REST and gRPC APIs "
                    "(not the tensorflow_model_server binary; see docs/serving.md).",
        allow_abbrev=False,
    )
    d = ServerOptions()
    a = p.add_argument
    a("--port", metavar="N", type=int, default=d.port, help="gRPC port (default %(default)s)")
    a("--grpc_host", metavar="HOST", default=d.grpc_host,
      help="gRPC bind address (forgekit only; default %(default)s, TF Serving binds 0.0.0.0)")
    a("--rest_api_port", metavar="N", type=int, default=d.rest_api_port,
      help="REST port; 0 disables REST, as in TF Serving (default %(default)s)")
    a("--rest_api_host", metavar="HOST", default=d.rest_api_host,
      help="REST bind address (forgekit only; default %(default)s)")
    a("--rest_api_num_threads", metavar="N", type=_positive, default=d.rest_api_num_threads,
      help="HTTP connections served at once, one thread each; more get 503 "
           "(default %(default)s)")
    a("--rest_api_timeout_in_ms", metavar="MS", type=int, default=d.rest_api_timeout_in_ms,
      help="a client must send a whole request within this time, else 408; idle "
           "keep-alive connections are closed after it; 0: no limit (default %(default)s)")
    a("--grpc_max_threads", metavar="N", type=_positive, default=d.grpc_max_threads,
      help="gRPC worker threads (default %(default)s)")
    a("--model_name", metavar="NAME", default=d.model_name, help="model name (default %(default)s)")
    a("--model_base_path", metavar="PATH", default=d.model_base_path,
      help="absolute path of the folder holding numeric version folders")
    a("--model_config_file", metavar="FILE", default=d.model_config_file,
      help="text-format ModelServerConfig (model_config_list); overrides --model_name and "
           "--model_base_path")
    a("--model_config_file_poll_wait_seconds", metavar="S", type=_int,
      default=d.model_config_file_poll_wait_seconds,
      help="whole seconds between re-reads of --model_config_file (labels, policies, models); "
           "0 reads it once (default %(default)s)")
    a("--file_system_poll_wait_seconds", metavar="S", type=_int,
      default=d.file_system_poll_wait_seconds,
      help="whole seconds between scans of the base paths; 0 scans once (default %(default)s)")
    a("--forgekit_poll_interval_seconds", metavar="S", type=_seconds,
      default=d.forgekit_poll_interval_seconds,
      help="forgekit only: run the two polls above that are enabled (not 0) every S seconds "
           "instead, fractions allowed, for lessons and tests; 0: off (default %(default)s)")
    a("--max_num_load_retries", metavar="N", type=_count, default=d.max_num_load_retries,
      help="times a failed load is retried before the version is given up (END); 0: one "
           "attempt (default %(default)s)")
    a("--load_retry_interval_micros", metavar="US", type=_int,
      default=d.load_retry_interval_micros,
      help="microseconds between load retries; negative: no wait (default %(default)s, "
           "one minute)")
    a("--enable_signature_method_name_check", metavar="BOOL", type=_bool, nargs="?",
      const=True, default=d.enable_signature_method_name_check,
      help="require classify/regress signatures to carry TF Serving's classify/regress "
           "method names, and predict ones one of the three; off by default, as in TF Serving "
           "(native TF2 models are written with the predict method name)")
    a("--saved_model_tags", metavar="TAGS", default=d.saved_model_tags,
      help="comma-separated MetaGraphDef tags to load (default %(default)s)")
    a("--allow_version_labels_for_unavailable_models", metavar="BOOL", type=_bool, nargs="?", const=True,
      default=d.allow_version_labels_for_unavailable_models,
      help="accept labels pointing at versions not yet loaded; without it, labels in the "
           "config fail at start-up, as in TF Serving (default %(default)s)")
    a("--max_request_bytes", metavar="BYTES", type=_positive, default=d.max_request_bytes,
      help="largest REST body / gRPC message accepted (forgekit only; default %(default)s)")
    return p


def parse_flags(argv: Sequence[str] | None = None) -> ServerOptions:
    """Parse ``forgekit serve`` flags. Exits with usage (status 2) on unknown flags."""
    ns = build_parser().parse_args(None if argv is None else list(argv))
    return ServerOptions(**vars(ns))


def _policy(proto) -> VersionPolicy:  # a tensorflow.serving.FileSystemStoragePathSourceConfig
    choice = proto.WhichOneof("policy_choice")
    if choice == "all":
        return VersionPolicy("all")
    if choice == "specific":
        return VersionPolicy("specific", versions=frozenset(proto.specific.versions))
    if choice in (None, "latest"):
        return VersionPolicy("latest", num_versions=max(proto.latest.num_versions, 1))
    raise ServingError("UNIMPLEMENTED", f"Unsupported version policy: {choice}")


def parse_model_config(text: str, source: str = "model config") -> list[ModelConfig]:
    """Models from a text-format ``ModelServerConfig`` with a ``model_config_list``.

    Parsed with the official protos, then validated the way TF Serving's ServerCore does.
    """
    from google.protobuf import text_format
    from tensorflow_serving.config import model_server_config_pb2

    config = model_server_config_pb2.ModelServerConfig()
    try:
        text_format.Parse(text, config)
    except text_format.ParseError as exc:
        raise ServingError("INVALID_ARGUMENT",
                           f"Invalid protobuf file: '{source}': {exc}") from None
    return models_from_proto(config, source)


def models_from_proto(config, source: str = "model config") -> list[ModelConfig]:
    """Models from a ``tensorflow.serving.ModelServerConfig`` message, validated."""
    if config.WhichOneof("config") != "model_config_list":
        raise ServingError("INVALID_ARGUMENT",
                           f"{source}: only model_config_list configs are supported")
    models = []
    for entry in config.model_config_list.config:
        models.append(_model(entry.name, entry.base_path, entry.model_platform,
                             _policy(entry.model_version_policy), dict(entry.version_labels)))
    return validate_models(models)


def _model(name: str, base_path: str, platform: str, policy: VersionPolicy,
           labels: dict[str, int]) -> ModelConfig:
    if not platform:
        raise ServingError("INVALID_ARGUMENT", "Illegal setting neither ModelServerConfig::"
                           "model_type (deprecated) nor ModelServerConfig::model_platform.")
    if platform != "tensorflow":
        raise ServingError("INVALID_ARGUMENT",
                           f"Model {name} requests unsupported platform {platform}")
    return ModelConfig(name, Path(base_path), policy, labels)


def validate_models(models: list[ModelConfig]) -> list[ModelConfig]:
    """TF Serving's checks: names unique and non-empty, base paths absolute."""
    seen: set[str] = set()
    for m in models:
        if not m.name:
            raise ServingError("INVALID_ARGUMENT", "Model name must not be empty")
        if m.name in seen:
            raise ServingError("INVALID_ARGUMENT",
                               f"Illegal to list model {m.name} multiple times in config list")
        seen.add(m.name)
        if not os.path.isabs(m.base_path):
            raise ServingError("INVALID_ARGUMENT",
                               f"Expected model {m.name} to have an absolute path or URI; got "
                               f"base_path()={m.base_path}")
    return models


def models_from_options(options: ServerOptions) -> tuple[list[ModelConfig], str]:
    """The models to serve: the config file if given, else the single --model_* model.

    Also returns the config file's text ("" without one): the config watcher compares later
    reads with exactly the text that was applied at start-up.
    """
    if options.model_config_file:
        path = Path(options.model_config_file)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ServingError("NOT_FOUND", f"{path}: {exc.strerror or exc}") from None
        return parse_model_config(text, str(path)), text
    if not options.model_base_path:
        raise ServingError("INVALID_ARGUMENT", "Both server_options.model_base_path and "
                           "server_options.model_config_file are empty!")
    model = ModelConfig(options.model_name, Path(options.model_base_path))
    return validate_models([model]), ""


# --------------------------------------------------------------------------- writing one




@dataclass(frozen=True)
class ModelEntry:
    """One model of a ``model_config_list``: name, base path, version policy, labels."""

    name: str
    base_path: str | os.PathLike[str]
    policy: str = "latest"  # latest, all or specific
    versions: Sequence[int] = ()  # for specific
    num_versions: int = 1  # for latest
    labels: Mapping[str, int] = field(default_factory=dict)


def model_config_text(models: Sequence[ModelEntry]) -> str:
    """A text-format ``ModelServerConfig`` built with the official protos, and validated.

    Validation parses the text back the way the server will, so a config forgekit writes is
    one ``tensorflow_model_server --model_config_file`` accepts.
    """
    from google.protobuf import text_format
    from tensorflow_serving.config import model_server_config_pb2

    from forgekit.serving.record import DeployError

    config = model_server_config_pb2.ModelServerConfig()
    for m in models:
        entry = config.model_config_list.config.add()
        entry.name = m.name
        entry.base_path = str(Path(m.base_path).absolute())
        entry.model_platform = "tensorflow"
        policy = entry.model_version_policy
        if m.policy == "all":
            policy.all.SetInParent()
        elif m.policy == "specific":
            if not m.versions:
                raise DeployError(f"model {m.name}: a 'specific' policy needs versions")
            policy.specific.versions.extend(sorted(int(v) for v in m.versions))
        elif m.policy == "latest":
            policy.latest.num_versions = int(m.num_versions)
        else:
            raise DeployError(f"model {m.name}: policy {m.policy!r}; expected latest, all or "
                              "specific")
        for label, version in sorted(m.labels.items()):
            entry.version_labels[label] = int(version)
    text = text_format.MessageToString(config)
    try:
        parse_model_config(text, "models.config")
    except ServingError as err:
        raise DeployError(f"the model config forgekit built is invalid: {err}") from None
    return text


def write_model_config(path: str | os.PathLike[str], models: Sequence[ModelEntry]) -> str:
    """Write ``models`` as a ``models.config`` atomically (a watching server never reads half)."""
    from forgekit.paths import write_text_atomic

    text = model_config_text(models)
    write_text_atomic(path, text)
    return text


def read_model_config(path: str | os.PathLike[str]) -> list[ModelEntry]:
    """The entries of a ``models.config`` (parsed with the official protos)."""
    models = parse_model_config(Path(path).read_text(encoding="utf-8"), str(path))
    return [ModelEntry(m.name, m.base_path, m.policy.kind, tuple(sorted(m.policy.versions)),
                       m.policy.num_versions, dict(m.labels)) for m in models]
