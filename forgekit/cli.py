"""The ``forgekit`` command: ``doctor``, ``run``, ``serve`` and ``audit``."""

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
    print(f"\nHTML: {args.out}/site/index.html   report: {args.out}/report.json")
    return 0 if all(r.ok for r in results) else 1


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

    sub.add_parser("serve", help="TF-Serving-compatible model server (forgekit serve --help)")

    from forgekit.audit.cli import add_parser as add_audit_parser

    add_audit_parser(sub)

    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
