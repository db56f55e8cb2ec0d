"""The ``forgekit`` command: ``doctor``, ``run``, ``site``, ``serve``, ``verify``, ``migrate`` and
``audit``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def _doctor(args: argparse.Namespace) -> int:
    from forgekit.diagnose.diagnosis import doctor

    report = doctor(args.path) if args.path else doctor(check_devices=not args.fast)
    print(report)
    return 0 if getattr(report, "ok", True) else 1


def _literal(text: str) -> object:
    """``-p epochs 3`` should inject the int 3, not the string "3"."""
    import json

    try:
        return json.loads(text)
    except ValueError:
        return text


def _run(args: argparse.Namespace) -> int:
    from forgekit.course.runner import run_course, summary_table

    params = {name: _literal(value) for name, value in args.parameter or []}
    results = run_course(args.paths, out=args.out, ci=args.ci, parameters=params,
                         timeout=args.timeout)
    print()
    print(summary_table(results))
    print(f"\nHTML: {args.out}/site/index.html   claims: {args.out}/site/claims.html   "
          f"report: {args.out}/report.json")
    return 0 if all(r.ok for r in results) else 1


def _site(args: argparse.Namespace) -> int:
    from forgekit.course.site import build_site

    try:
        index = build_site(args.out)
    except (FileNotFoundError, ValueError) as err:  # no run yet, or not a run's files
        print(f"forgekit site: {err}", file=sys.stderr)
        return 2
    print(f"HTML: {index}   claims: {index.parent / 'claims.html'}")
    return 0


def _verify(args: argparse.Namespace) -> int:
    """Post-deployment check: exit 0 when the expected model answers, 1 on any problem."""
    from pathlib import Path

    from forgekit.serving.client import Client
    from forgekit.serving.record import DeployError, load_record
    from forgekit.serving.verify import verify_deployment

    try:
        record = load_record(args.expect)
    except DeployError as err:
        print(f"forgekit verify: {err}", file=sys.stderr)
        return 2
    with Client(args.url, timeout=args.timeout) as client:
        report = verify_deployment(client, args.model or record.model_name, record,
                                   label=args.label, wait=args.wait)
    print(report.text())
    if args.html:
        Path(args.html).write_text(report.html(), encoding="utf-8")
    return 0 if report.ok else 1


def _migrate(args: argparse.Namespace) -> int:
    """Keras 2 artifact -> proven Keras 3 .keras: exit 0 proven, 1 answers differ, 2 not migrated."""
    from forgekit.migrate import migrate

    report = migrate(args.src, args.dest, architecture=args.architecture, export=args.export,
                     custom=args.custom or (), keras2_modules=args.keras2_module or (),
                     unsafe_lambda=args.unsafe_lambda, fallback=args.fallback)
    print(report, file=sys.stdout if report.exit_code == 0 else sys.stderr)
    return report.exit_code


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``forgekit`` command line; returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["serve"]:  # TF Serving's own flag syntax; parsed by the server itself
        from forgekit.serving.server import main as serve_main

        return serve_main(argv[1:])

    parser = argparse.ArgumentParser(prog="forgekit", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("doctor", help="report the environment, or diagnose a saved model PATH")
    p.add_argument("path", nargs="?", help="a saved model file or folder to diagnose")
    p.add_argument("--fast", action="store_true", help="skip importing TensorFlow for devices")
    p.set_defaults(func=_doctor)

    p = sub.add_parser("run", help="execute notebooks headless into OUT (HTML + report.json)")
    p.add_argument("paths", nargs="+", help="notebooks, or folders of notebooks")
    p.add_argument("--out", default="build")
    p.add_argument("--ci", action="store_true", help="use each notebook's small CI parameters")
    p.add_argument("-p", "--parameter", nargs=2, action="append", metavar=("NAME", "VALUE"),
                   help="inject a parameter into every notebook (JSON value, else string)")
    p.add_argument("--timeout", type=float, default=1800, help="seconds per notebook")
    p.set_defaults(func=_run)

    p = sub.add_parser("site", help="rebuild OUT/site from the last `forgekit run --out OUT` "
                                    "(executes nothing)")
    p.add_argument("--out", default="build")
    p.set_defaults(func=_site)

    p = sub.add_parser("verify", help="check that a deployed model is the one a publish record "
                                      "describes (exit 0 OK, 1 problems, 2 bad record)")
    p.add_argument("--url", default=None,
                   help="server URL, http://HOST:PORT or grpc://HOST:PORT "
                        "(default $FORGEKIT_SERVING_URL, else http://127.0.0.1:8501)")
    p.add_argument("--model", default=None, help="served model name (default: the record's)")
    p.add_argument("--expect", required=True, metavar="RECORD",
                   help="the publish record, <base>/_forgekit/<version>.record.json")
    p.add_argument("--label", default=None, help="check the version this label points at")
    p.add_argument("--wait", type=float, default=0.0, metavar="S",
                   help="keep retrying for S seconds while the version is not yet picked up")
    p.add_argument("--timeout", type=float, default=30.0, help="seconds per request")
    p.add_argument("--html", default=None, metavar="FILE", help="also write the report as HTML")
    p.set_defaults(func=_verify)

    p = sub.add_parser("migrate", help="move a Keras 2 artifact to a Keras 3 .keras file, proven "
                                       "(exit 0 proven, 1 answers differ, 2 not migrated)")
    p.add_argument("src", help="Keras 2 SavedModel folder, legacy .h5, or weights file / checkpoint")
    p.add_argument("dest", help="the new .keras file (written only once proven)")
    p.add_argument("--architecture", metavar="JSON", help="architecture JSON for a weights SRC")
    p.add_argument("--export", metavar="DIR", help="also write a SavedModel export to DIR")
    p.add_argument("--custom", action="append", metavar="MODULE:NAME",
                   help="a Keras 3 custom class the config names (repeatable)")
    p.add_argument("--keras2-module", action="append", metavar="MODULE",
                   help="a module tf-keras imports first, registering its custom classes")
    p.add_argument("--unsafe-lambda", action="store_true",
                   help="rebuild Lambda layers from their bytecode (runs the file's code)")
    p.add_argument("--fallback", action="store_true",
                   help="if it cannot be rebuilt: an inference-only TFSMLayer model")
    p.set_defaults(func=_migrate)

    sub.add_parser("serve", help="TF-Serving-compatible model server (forgekit serve --help)")

    from forgekit.audit.cli import add_parser as add_audit_parser

    add_audit_parser(sub)

    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
