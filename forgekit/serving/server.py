"""``forgekit serve``: start the model server from TF Serving's command-line flags.

Start-up follows tensorflow_model_server: read the models (flags or model_config_file), load
the first versions, then open gRPC (``--port``) and REST (``--rest_api_port``; 0 disables it).
The base paths are then polled every ``--file_system_poll_wait_seconds``; a failed load is
retried ``--max_num_load_retries`` times, ``--load_retry_interval_micros`` apart. SIGTERM or SIGINT
stop the server cleanly with exit status 0; a start-up failure prints
``Failed to start server. Error: ...`` and exits with status 1.
"""

from __future__ import annotations

import dataclasses
import gc
import logging
import os
import signal
import sys
import threading
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Any

from forgekit.quiet import QUIET_ENV, muted_stderr
from forgekit.serving.config import (
    ServerOptions,
    models_from_options,
    parse_flags,
    parse_model_config,
)
from forgekit.serving.core import ServerCore, set_method_name_check
from forgekit.serving.error_codes import ServingError
from forgekit.serving.versions import LoadRetries, Poller

log = logging.getLogger("forgekit.serving")
# Set by ModelServer: the server exits when that process is gone, so a crashed notebook
# kernel or test run never leaves a server behind.
PARENT_ENV = "FORGEKIT_SERVE_PARENT_PID"


def _watch_config(path: Path, interval: float, core: ServerCore, applied: str,
                  allow_labels_for_unavailable_models: bool, stop: threading.Event) -> None:
    """Re-read the model config every ``interval`` seconds and apply it when it changed.

    ``applied`` is the text in force, read at start-up: an edit made while the first
    versions were loading is seen at the first interval. A config that fails (bad syntax, a
    label on an unavailable version) is logged and retried at the next interval, the running
    config staying in force, as TF Serving does. Any other exception is logged with its
    traceback and the watcher carries on, like the version poller.
    """
    while not stop.wait(interval):
        try:
            text = path.read_text(encoding="utf-8")
            if text == applied:
                # TF Serving re-applies an unchanged file too; only its label check can fail
                # then (a labelled version unloaded since), and the labels in force stay.
                core.check_labels(parse_model_config(text, str(path)),
                                  allow_labels_for_unavailable_models=(
                                      allow_labels_for_unavailable_models))
                continue
            added = core.configure(
                parse_model_config(text, str(path)),
                allow_labels_for_unavailable_models=allow_labels_for_unavailable_models)
        except (OSError, ServingError) as exc:
            log.error("Failed to reload model config %s: %s", path, exc)
            continue
        except Exception:  # a bug must not end config reloads for the server's lifetime
            log.exception("Failed to reload model config %s", path)
            continue
        applied = text
        log.info("Reloaded model config %s", path)
        try:
            core.poll(added)
        except Exception:
            log.exception("Failed to load the models added by %s", path)


def serve(options: ServerOptions, stop: threading.Event | None = None) -> int:
    """Run the server until ``stop`` is set (or SIGTERM/SIGINT in the main thread).

    In the main thread SIGTERM and SIGINT set ``stop`` while the server runs, from before the
    first (possibly long) load, so a SIGTERM during start-up also ends in a clean shutdown with
    status 0; the handlers they had before are put back when it returns or fails.
    """
    stop = stop or threading.Event()
    if threading.current_thread() is not threading.main_thread():
        return _serve(options, stop)
    previous = {sig: signal.signal(sig, lambda *_: stop.set())
                for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        return _serve(options, stop)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _serve(options: ServerOptions, stop: threading.Event) -> int:
    models, config_text = models_from_options(options)
    if options.model_config_file and options.model_base_path:
        log.warning("--model_config_file is set: --model_name and --model_base_path are ignored")
    tags = [t.strip() for t in options.saved_model_tags.split(",") if t.strip()]
    core = ServerCore(partial(_load, tags=tags), retries=LoadRetries(
        options.max_num_load_retries, options.load_retry_interval_micros / 1e6))
    try:  # labels are checked before anything loads, as in TF Serving
        core.configure(models, allow_labels_for_unavailable_models=(
            options.allow_version_labels_for_unavailable_models))
    except ServingError as err:
        if err.code == "FAILED_PRECONDITION":
            err.message += " (at start-up no version is loaded yet: start with " \
                           "--allow_version_labels_for_unavailable_models)"
        raise
    with muted_stderr():  # TensorFlow's C++ start-up chatter
        import tensorflow as tf  # noqa: F401  (imported once, here, before any thread)
    set_method_name_check(options.enable_signature_method_name_check)

    for m in models:
        log.info("Adding model %s: base path %s, version policy %s%s", m.name, m.base_path,
                 m.policy.describe(), f", labels {dict(m.labels)}" if m.labels else "")
    poller = Poller(lambda: core.models.values(), options.file_system_poll_s)
    poller.poll_all()  # like TF Serving, load what is there before opening the ports

    grpc_server, rest = _open_ports(core, options)
    poller.start()

    if options.model_config_file and options.model_config_poll_s > 0:
        threading.Thread(target=_watch_config, name="forgekit-config", daemon=True, args=(
            Path(options.model_config_file), options.model_config_poll_s,
            core, config_text, options.allow_version_labels_for_unavailable_models,
            stop)).start()
    parent = int(os.environ.get(PARENT_ENV, "0") or 0)
    while not stop.wait(0.25):
        if parent and os.getppid() != parent:  # started by ModelServer, whose process died
            log.warning("Parent process %d is gone", parent)
            break
    stop.set()
    log.info("Shutting down")
    poller.stop()
    grpc_stopped = grpc_server.stop(grace=2.0)  # both drain in-flight requests meanwhile
    if rest is not None:
        rest.shutdown(grace=2.0)
    grpc_stopped.wait(5.0)
    for model in core.models.values():
        model.unload_all(collect=False)
    gc.collect()  # once: an InProcessServer's kernel gets the memory back
    log.info("Server stopped")
    return 0


def _open_ports(core: ServerCore, options: ServerOptions) -> tuple[Any, Any]:
    """Start gRPC, then REST unless disabled; returns (grpc server, RestServer or None)."""
    from forgekit.serving.budget import MemoryBudget, default_limit
    from forgekit.serving.grpc_api import start_grpc_server
    from forgekit.serving.http_server import RestServer

    budget = MemoryBudget(default_limit(options.max_request_bytes))  # one for both protocols
    grpc_server, grpc_port = start_grpc_server(
        core, options.grpc_host, options.port, max_workers=options.grpc_max_threads,
        max_message_bytes=options.max_request_bytes, budget=budget,
        allow_labels_for_unavailable_models=options.allow_version_labels_for_unavailable_models)
    log.info("Running gRPC ModelServer at %s:%d ...", options.grpc_host, grpc_port)
    if not options.rest_api_port:
        return grpc_server, None
    if options.rest_api_port == options.port:
        log.error("--rest_api_port cannot be same as --port. Please use a different port for "
                  "HTTP/REST API. Skipped exporting HTTP/REST API.")
        return grpc_server, None
    if options.rest_api_port == -1:  # forgekit only (ModelServer): the OS picks, logged below
        options = dataclasses.replace(options, rest_api_port=0)
    try:
        rest = RestServer(core, options.rest_api_host, options.rest_api_port,
                          max_connections=options.rest_api_num_threads,
                          timeout_s=options.rest_api_timeout_in_ms / 1000,
                          max_body=options.max_request_bytes, budget=budget)
    except OSError:
        grpc_server.stop(None)
        raise
    rest.start()
    log.info("Exporting HTTP/REST API at:%s:%d ...", *rest.address)
    return grpc_server, rest


def _load(path: Path, tags: list[str]):
    from forgekit.serving.servable import SavedModelServable

    return SavedModelServable(path, tags)


def configure_logging() -> None:
    """Log to stderr in one line per event, like tensorflow_model_server."""
    logging.basicConfig(stream=sys.stderr, level=logging.INFO,
                        format="%(asctime)s %(levelname).1s forgekit.serving] %(message)s")
    for noisy in ("absl", "tensorflow"):
        logging.getLogger(noisy).setLevel(logging.ERROR)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``forgekit serve`` and ``python -m forgekit.serving``."""
    for key, value in QUIET_ENV.items():  # must precede the TensorFlow import
        os.environ.setdefault(key, value)
    options = parse_flags(argv)
    configure_logging()
    try:
        return serve(options)
    except ServingError as err:
        print(f"Failed to start server. Error: {err.code}: {err.message}", file=sys.stderr)
    except OSError as err:
        print(f"Failed to start server. Error: UNAVAILABLE: {err}", file=sys.stderr)
    return 1
