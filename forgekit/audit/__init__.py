"""The audit trail: every run, its per-epoch metrics, every artifact and every deployment in SQL.

SQLite by default (one file, WAL), PostgreSQL when ``$FORGEKIT_AUDIT_DSN`` or an argument names
one, through one SQLAlchemy Core code path. Importing this package imports neither TensorFlow nor
SQLAlchemy: names resolve on first use (``forgekit.audit.AuditCallback`` imports Keras).

- :func:`open_store` -> :class:`AuditStore` (``start_run``, ``log_metrics``,
  ``record_artifact``, ``record_deployment``, ``record_verification``, ``query``).
- :class:`AuditCallback`: a Keras callback recording a run and its epochs.
- :func:`lineage`, :func:`best_run`, :func:`check_artifacts`, :func:`list_runs`: the questions,
  each around an SQL text you can print (``forgekit.audit.queries``).
- ``forgekit audit runs | lineage MODEL [--version N] | check`` on the command line.
"""

from __future__ import annotations

from forgekit._lazy import lazy_names

_LAZY = {
    "open_store": "forgekit.audit.store",
    "AuditStore": "forgekit.audit.store",
    "DSN_ENV": "forgekit.audit.dsn",
    "AuditCallback": "forgekit.audit.callback",
    "fingerprint": "forgekit.audit.fingerprints",
    "lineage": "forgekit.audit.queries",
    "best_run": "forgekit.audit.queries",
    "check_artifacts": "forgekit.audit.queries",
    "list_runs": "forgekit.audit.queries",
    "SCHEMA_VERSION": "forgekit.audit.schema",
    "AuditError": "forgekit.audit.errors",
    "StoreConfigError": "forgekit.audit.errors",
    "StoreUnavailableError": "forgekit.audit.errors",
    "StoreReadOnlyError": "forgekit.audit.errors",
    "SchemaTooNewError": "forgekit.audit.errors",
    "NotRecordedError": "forgekit.audit.errors",
    "StoreCorruptError": "forgekit.audit.errors",
    "InvalidValueError": "forgekit.audit.errors",
}
__all__ = sorted(_LAZY)
__getattr__, __dir__ = lazy_names(__name__, _LAZY)
