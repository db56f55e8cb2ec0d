"""``forgekit audit``: read an audit store from the command line.

    forgekit audit [--db FILE | --dsn DSN] runs
    forgekit audit [--db FILE | --dsn DSN] lineage MODEL [--version N]
    forgekit audit [--db FILE | --dsn DSN] check

Without ``--db``/``--dsn`` the store is ``$FORGEKIT_AUDIT_DSN``. Exit codes: 0 done (and, for
``check``, every artifact matches its fingerprint); 1 ``check`` found changed or missing
artifacts, or ``lineage`` found no such deployment; 2 the store could not be used (the message
says why and what to do, without a traceback).

Every command only reads: the store is opened read-only (``open_store(..., read_only=True)``),
so a wrong path is reported instead of created, and stored text (run names, paths) is printed
with control characters escaped, so a name cannot drive the terminal.
"""

from __future__ import annotations

import argparse
import sys

from forgekit.audit.errors import AuditError, NotRecordedError
from forgekit.errors import ForgekitError

EXIT_OK, EXIT_FOUND_PROBLEMS, EXIT_STORE_ERROR = 0, 1, 2


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Add the ``audit`` subcommand to the ``forgekit`` parser."""
    p = sub.add_parser("audit", help="runs, lineage and fingerprint checks from an audit store",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    where = p.add_mutually_exclusive_group()
    where.add_argument("--db", metavar="FILE", help="an SQLite audit store file")
    where.add_argument("--dsn", help="a database URL (sqlite:///FILE or postgresql://...); "
                                     "default $FORGEKIT_AUDIT_DSN")
    p.add_argument("--namespace", help="PostgreSQL schema holding the tables (if not public)")
    what = p.add_subparsers(dest="audit_command", required=True)
    what.add_parser("runs", help="every recorded run and its last-epoch metrics")
    lin = what.add_parser("lineage", help="a deployed version -> artifact -> run -> metrics")
    lin.add_argument("model")
    lin.add_argument("--version", type=int, help="default: the highest deployed version")
    what.add_parser("check", help="re-fingerprint every recorded artifact on disk")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Execute ``forgekit audit ...``; returns the exit code."""
    from forgekit.audit import queries
    from forgekit.audit.queries import printable
    from forgekit.audit.store import open_store

    try:
        with open_store(args.db or args.dsn, namespace=args.namespace, read_only=True) as store:
            if args.audit_command == "runs":
                print(printable(queries.list_runs(store)))
                return EXIT_OK
            if args.audit_command == "lineage":
                try:
                    print(printable(queries.lineage(store, args.model, args.version)))
                except NotRecordedError as exc:
                    print(f"forgekit audit: {printable(exc)}", file=sys.stderr)
                    return EXIT_FOUND_PROBLEMS
                return EXIT_OK
            report = queries.check_artifacts(store)
            print(printable(report))
            bad = len(report.problems)
            print(f"\n{len(report.rows) - bad} of {len(report.rows)} artifacts match their "
                  f"recorded fingerprint" + (f"; {bad} changed or missing" if bad else ""))
            return EXIT_OK if report.ok else EXIT_FOUND_PROBLEMS
    except (AuditError, ForgekitError) as exc:
        print(f"forgekit audit: {printable(exc)}", file=sys.stderr)
        return EXIT_STORE_ERROR
