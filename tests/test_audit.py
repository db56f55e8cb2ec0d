"""forgekit.audit on SQLite and on a real PostgreSQL server (started for the session).

Every store test runs on both backends. The PostgreSQL tests skip locally when no server can
be started (the reason is printed); under CI (``CI=true``) that is a failure, not a skip.
"""

from __future__ import annotations

import json
import math
import os
import pwd
import signal
import subprocess
import sys
import tempfile
import textwrap
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa

from forgekit.audit import (
    InvalidValueError,
    NotRecordedError,
    SchemaTooNewError,
    StoreConfigError,
    StoreCorruptError,
    StoreReadOnlyError,
    StoreUnavailableError,
    best_run,
    check_artifacts,
    lineage,
    open_store,
    queries,
    schema,
)
from forgekit.audit.errors import AuditError
from forgekit.audit.fingerprints import fingerprint
from forgekit.audit.store import resolve_url
from forgekit.cli import main as cli
from tests import pg_server
from tests.conftest import ROOT

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


@pytest.fixture(scope="session")
def postgres():
    """A throwaway PostgreSQL server for the whole session (see tests/pg_server.py)."""
    try:
        server = pg_server.start()
    except pg_server.ServerUnavailable as exc:
        if IN_CI:
            pytest.fail(f"CI must run the audit tests against PostgreSQL, but: {exc}")
        pytest.skip(f"no PostgreSQL server could be started here: {exc}")
    yield server
    server.stop()


class Target:
    """Where a test's store lives: an SQLite file, or a fresh schema on the session's server."""

    def __init__(self, backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
        self.backend = backend
        if backend == "sqlite":
            self.dsn, self.namespace = str(tmp_path / "audit.sqlite"), None
        else:
            self.dsn = request.getfixturevalue("postgres").dsn
            self.namespace = f"t_{uuid.uuid4().hex[:12]}"

    def open(self, **kw):
        return open_store(self.dsn, namespace=self.namespace, **kw)

    def cli_args(self) -> list[str]:
        if self.backend == "sqlite":
            return ["audit", "--db", self.dsn]
        return ["audit", "--dsn", self.dsn, "--namespace", self.namespace]


@pytest.fixture(params=["sqlite", "postgresql"])
def target(request, tmp_path):
    return Target(request.param, tmp_path, request)


@pytest.fixture
def store(target):
    with target.open() as s:
        yield s


def _files(folder: Path, files: dict[str, bytes]) -> Path:
    for name, data in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)
    return folder


def _two_runs(store, base: Path):
    """Baseline (worse) deployed as version 1, a better retrain saved beside it, not deployed."""
    ids = []
    for name, accs in (("baseline", [0.55, 0.61, 0.64]), ("retrained", [0.6, 0.72, 0.81])):
        run = store.start_run(name, params={"width": len(ids) * 8 + 4}, versions={"keras": "3"})
        for epoch, acc in enumerate(accs):
            store.log_metrics(run, epoch, {"val_accuracy": acc, "val_loss": 1 - acc})
        store.end_run(run)
        ids.append(run)
    v1 = _files(base / "serving" / "1", {"saved_model.pb": b"graph-1", "variables/v.data": b"w1"})
    store.record_artifact(v1, run_id=ids[0], kind="savedmodel")
    store.record_deployment(model_name="incident", version=1, path=v1)
    flat = base / "model_v2.h5"
    flat.write_bytes(b"\x89HDF retrained")
    store.record_artifact(flat, run_id=ids[1], kind="h5_model")
    return ids, v1, flat


# ------------------------------------------------------------------------------ store basics


def test_lineage_traces_a_served_version_to_its_run_and_metrics(store, tmp_path):
    (baseline, retrained), v1, _ = _two_runs(store, tmp_path)
    store.record_verification(model_name="incident", version=1, ok=True, detail="answered v1")
    trace = lineage(store, "incident", 1)
    assert trace.run_id == baseline and trace.run_name == "baseline"
    assert trace.final_metrics == pytest.approx({"val_accuracy": 0.64, "val_loss": 0.36})
    assert trace.last_epoch == 2 and trace.on_disk == "ok"
    assert trace.verification["ok"] and trace.verification["detail"] == "answered v1"
    assert trace.row["path"] == str(v1.absolute())
    assert lineage(store, "incident").version == 1  # default: highest deployed version
    text = str(trace)
    assert "'baseline'" in text and "val_accuracy=0.6400" in text
    assert store.integrity_problems() == []


def test_best_run_is_not_the_deployed_one(store, tmp_path):
    (baseline, retrained), _, _ = _two_runs(store, tmp_path)
    ranked = best_run(store, "val_accuracy", model="incident")
    assert [r["run_id"] for r in ranked.ranking] == [retrained, baseline]
    assert ranked.deployed_run_id == baseline and not ranked.is_deployed
    by_loss = best_run(store, "val_loss", model="incident")
    assert by_loss.mode == "min" and by_loss.best["run_id"] == retrained
    with pytest.raises(NotRecordedError, match="no run recorded the metric 'auc'"):
        best_run(store, "auc")


def test_lineage_of_an_unknown_deployment_says_so(store):
    with pytest.raises(NotRecordedError, match="no deployment of model 'ghost'"):
        lineage(store, "ghost")


def test_check_finds_overwritten_tampered_and_deleted_artifacts(store, tmp_path):
    _, v1, flat = _two_runs(store, tmp_path)
    extra = tmp_path / "notes.json"
    extra.write_text('{"class_name": "Sequential", "config": {"layers": []}}')
    store.record_artifact(extra)  # kind detected from content
    assert store.query("SELECT kind FROM artifacts WHERE path = :p", p=str(extra))[0]["kind"] \
        == "json_architecture"
    assert check_artifacts(store).ok
    flat.write_bytes(b"\x89HDF someone saved another model here")  # overwritten in place
    (v1 / "variables" / "v.data").write_bytes(b"w2")  # tampered
    extra.unlink()  # deleted
    report = check_artifacts(store)
    status = {Path(r["path"]).name: r["status"] for r in report.rows}
    assert status == {"1": "changed", "model_v2.h5": "changed", "notes.json": "missing"}
    assert not report.ok and lineage(store, "incident", 1).on_disk == "changed"
    # re-recording the new content makes it the reference again
    store.record_artifact(flat, kind="h5_model")
    assert {Path(r["path"]).name for r in check_artifacts(store).problems} == {"1", "notes.json"}


def test_deployment_links_to_the_recorded_artifact_or_records_it(store, tmp_path):
    (baseline, _), v1, _ = _two_runs(store, tmp_path)
    n = store.query("SELECT COUNT(*) AS n FROM artifacts")[0]["n"]
    store.record_deployment(model_name="other", version=3, path=v1)
    assert store.query("SELECT COUNT(*) AS n FROM artifacts")[0]["n"] == n  # linked, not copied
    arch = tmp_path / "arch.json"
    arch.write_text('{"class_name": "Sequential", "config": {"layers": []}}')
    store.record_deployment(model_name="other", version=4, path=arch, run_id=baseline,
                            fingerprint=fingerprint(arch)[0])
    trace = lineage(store, "other", 4)
    assert trace.row["kind"] == "json_architecture" and trace.run_id == baseline
    with pytest.raises(AuditError, match="changed after they were fingerprinted"):
        store.record_deployment(model_name="other", version=5, path=arch, fingerprint="0" * 64)


def test_a_deployment_failing_mid_record_leaves_nothing(store, tmp_path):
    """record_deployment is one transaction: the artifact row it inserts first is rolled back
    when the deployment row is refused (here a version no INTEGER column holds)."""
    notes = tmp_path / "notes.json"
    notes.write_text("{}")
    with pytest.raises(Exception):  # noqa: B017 - each database words the overflow its own way
        store.record_deployment(model_name="half", version=2**70, path=notes)
    assert store.query("SELECT COUNT(*) AS n FROM artifacts")[0]["n"] == 0
    assert store.query("SELECT COUNT(*) AS n FROM deployments")[0]["n"] == 0


def test_verification_without_a_recorded_deployment_is_kept(store):
    store.record_verification(model_name="elsewhere", version=7, ok=False, detail="v6 answered")
    row = store.query("SELECT deployment_id, ok, detail FROM verifications")[0]
    assert row["deployment_id"] is None and not row["ok"] and row["detail"] == "v6 answered"


def test_folder_fingerprint_is_stable_and_sees_every_change(tmp_path):
    a = _files(tmp_path / "a", {"x/1.bin": b"1", "y.bin": b"2"})
    b = _files(tmp_path / "b", {"y.bin": b"2", "x/1.bin": b"1"})  # other creation order
    assert fingerprint(a) == fingerprint(b) and fingerprint(a)[1] == 2
    (b / "y.bin").rename(b / "z.bin")
    assert fingerprint(a)[0] != fingerprint(b)[0]
    before = fingerprint(a)[0]
    (a / "x" / "1.bin").write_bytes(b"9")  # same size, other content
    assert fingerprint(a)[0] != before
    before = fingerprint(a)[0]
    (a / "new.bin").write_bytes(b"")
    assert fingerprint(a)[0] != before


# ------------------------------------------------------------------------------ schema versions


def _raw_engine(target):
    url = resolve_url(target.dsn)
    if url.get_backend_name() == "postgresql":
        engine = sa.create_engine(url, connect_args={
            "options": f"-c search_path={target.namespace}"})
        with engine.begin() as conn:
            conn.execute(sa.text(f"CREATE SCHEMA IF NOT EXISTS {target.namespace}"))
        return engine
    return sa.create_engine(url)


def test_a_store_from_schema_1_is_migrated_and_keeps_its_rows(target):
    engine = _raw_engine(target)
    with engine.begin() as conn:  # what forgekit with schema 1 left behind
        assert schema.migrate(conn, target=1) == [1]
        conn.execute(sa.text(
            "INSERT INTO runs (name, status, params, versions, started_at) "
            "VALUES ('old run', 'finished', '{}', '{}', CURRENT_TIMESTAMP)"))
    engine.dispose()
    with target.open() as store:
        assert store.migrated == [2] and store.schema_version() == schema.SCHEMA_VERSION
        assert [r["name"] for r in store.query("SELECT name FROM runs")] == ["old run"]
        store.record_verification(model_name="m", version=1, ok=True, detail="v2 table works")
    with target.open() as store:
        assert store.migrated == []  # nothing left to do


def test_a_store_from_a_newer_forgekit_is_refused_with_what_to_do(target):
    with target.open():
        pass
    engine = _raw_engine(target)
    with engine.begin() as conn:
        conn.execute(schema.schema_versions.insert().values(
            version=schema.SCHEMA_VERSION + 1, applied_at=schema.now(), forgekit_version="9.9"))
    engine.dispose()
    with pytest.raises(SchemaTooNewError) as err:
        target.open()
    message = str(err.value)
    assert f"schema version {schema.SCHEMA_VERSION + 1}" in message
    assert "newer forgekit" in message and "Fix: upgrade forgekit" in message
    code, _, stderr = _cli(target.cli_args() + ["runs"])
    assert code == 2 and "newer forgekit" in stderr and "Traceback" not in stderr


# ------------------------------------------------------------------------------ bad input


@pytest.mark.parametrize("dsn", ["mysql://u:p@localhost/db", "http://example.org/audit"])
def test_unknown_dsn_scheme(dsn):
    with pytest.raises(StoreConfigError, match="unknown DSN scheme") as err:
        open_store(dsn)
    assert "postgresql://" in str(err.value) and ":p@" not in str(err.value)


def test_no_store_named(monkeypatch):
    monkeypatch.delenv("FORGEKIT_AUDIT_DSN", raising=False)
    with pytest.raises(StoreConfigError, match="no audit store was named"):
        open_store()
    code, _, stderr = _cli(["audit", "runs"])
    assert code == 2 and "FORGEKIT_AUDIT_DSN" in stderr


def test_unreachable_server():
    dead_port = pg_server._free_port()  # nothing listens there
    with pytest.raises(StoreUnavailableError, match="cannot reach a PostgreSQL server") as err:
        open_store(f"postgresql://forgekit:secret@127.0.0.1:{dead_port}/audit")
    assert "secret" not in str(err.value) and "Fix: start the server" in str(err.value)


def test_wrong_password(postgres):
    dsn = postgres.dsn.replace(pg_server.PASSWORD, "not-the-password")
    with pytest.raises(StoreUnavailableError, match="refused the login of user 'forgekit'") as err:
        open_store(dsn)
    assert "not-the-password" not in str(err.value)
    code, _, stderr = _cli(["audit", "--dsn", dsn, "runs"])
    assert code == 2 and "refused the login" in stderr and "Traceback" not in stderr


def test_missing_database(postgres):
    with pytest.raises(StoreUnavailableError, match="has no database 'nope'"):
        open_store(postgres.dsn.rsplit("/", 1)[0] + "/nope")


def test_read_only_sqlite_file():
    folder = Path(tempfile.mkdtemp(prefix="forgekit-ro-"))  # not tmp_path: nobody must reach it
    try:
        db = folder / "audit.sqlite"
        with open_store(db):
            pass
        db.chmod(0o444)
        folder.chmod(0o755)
        if os.geteuid() != 0:
            with pytest.raises(StoreReadOnlyError, match="read-only"):
                open_store(db)
            return
        # root may write anything: ask as an unprivileged user, in a forked child (the venv's
        # interpreter may not be executable for that user, the loaded modules are)
        def write():
            try:
                open_store(db).close()
            except StoreReadOnlyError as exc:
                return 2, "", str(exc)
            return 0, "", "opened for writing"

        code, stderr = _as_nobody(write)
        assert code == 2, stderr
        assert "read-only for this user" in stderr and "Fix: chmod u+w" in stderr
        # a read command only reads: it works on a store this user cannot write
        code, stderr = _as_nobody(lambda: _cli(["audit", "--db", str(db), "runs"]))
        assert code == 0 and "Traceback" not in stderr, stderr
        assert sorted(p.name for p in folder.iterdir()) == ["audit.sqlite"]
    finally:
        import shutil

        shutil.rmtree(folder, ignore_errors=True)


def _as_nobody(fn):
    """Run ``fn`` in a forked child switched to the ``nobody`` user; returns its (code, stderr)."""
    nobody = pwd.getpwnam("nobody")
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        try:
            os.setgroups([])
            os.setgid(nobody.pw_gid)
            os.setuid(nobody.pw_uid)
            code, _, err = fn()
            os.write(write, json.dumps([code, err]).encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read) as fh:
        data = fh.read()
    os.waitpid(pid, 0)
    return tuple(json.loads(data))


def test_a_file_that_is_not_sqlite(tmp_path):
    model = tmp_path / "model.h5"
    model.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 4096)
    with pytest.raises(StoreConfigError, match="not an SQLite database"):
        open_store(model)
    code, _, stderr = _cli(["audit", "--db", str(model), "check"])
    assert code == 2 and "forgekit doctor PATH" in stderr


def test_in_memory_sqlite_is_refused():
    with pytest.raises(StoreConfigError, match="must be a file"):
        open_store("sqlite://")


def test_importing_the_package_loads_neither_sqlalchemy_nor_tensorflow():
    code = ("import sys, forgekit.audit, forgekit.cli; "
            "print(sorted(m for m in ('sqlalchemy', 'tensorflow', 'keras') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=ROOT).stdout.strip()
    assert out == "[]"


# ------------------------------------------------------------------------------ command line


def _cli(argv):
    import contextlib
    import io

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli(argv)
    return code, out.getvalue(), err.getvalue()


def test_cli_runs_lineage_and_check_exit_codes(target, tmp_path):
    with target.open() as store:
        _, v1, flat = _two_runs(store, tmp_path)
    code, out, _ = _cli(target.cli_args() + ["runs"])
    assert code == 0 and "baseline" in out and "retrained" in out and "val_accuracy=0.8100" in out
    code, out, _ = _cli(target.cli_args() + ["lineage", "incident", "--version", "1"])
    assert code == 0 and "'baseline'" in out and "val_accuracy=0.6400" in out
    code, _, err = _cli(target.cli_args() + ["lineage", "incident", "--version", "2"])
    assert code == 1 and "no deployment of 'incident' version 2" in err
    code, out, _ = _cli(target.cli_args() + ["check"])
    assert code == 0 and "2 of 2 artifacts match" in out
    flat.write_bytes(b"overwritten")
    code, out, _ = _cli(target.cli_args() + ["check"])
    assert code == 1 and "✗ changed" in out and "1 changed or missing" in out


def test_cli_reports_a_bad_dsn_without_traceback():
    proc = subprocess.run([sys.executable, "-m", "forgekit.cli", "audit", "--dsn",
                           "oracle://u:pw@h/db", "runs"], capture_output=True, text=True,
                          cwd=ROOT)
    assert proc.returncode == 2
    assert "unknown DSN scheme 'oracle'" in proc.stderr and "Traceback" not in proc.stderr


# ------------------------------------------------------------------------------ concurrency

WRITER = textwrap.dedent("""
    import sys
    from forgekit.audit import open_store
    dsn, namespace, rows = sys.argv[1], sys.argv[2] or None, int(sys.argv[3])
    with open_store(dsn, namespace=namespace) as store:
        run = store.start_run(f"writer {sys.argv[4]}")
        sys.stdout.write("ready\\n"); sys.stdout.flush()
        sys.stdin.readline()  # every writer starts together
        for i in range(rows):
            store.log_metrics(run, i, {"loss": 1.0 / (i + 1)})  # one transaction per row
        store.end_run(run)
""")


def test_four_processes_write_exactly_4000_rows(target):
    with target.open():
        pass  # schema created once, so the writers race on rows, not on DDL
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, target.dsn, target.namespace or "",
                               "1000", str(i)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, cwd=ROOT) for i in range(4)]
    try:
        for p in procs:
            assert p.stdout.readline() == "ready\n", p.stderr.read()
        for p in procs:
            p.stdin.write("go\n")
            p.stdin.flush()
        for p in procs:
            _, err = p.communicate(timeout=300)
            assert p.returncode == 0, err
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    with target.open() as store:
        per_run = store.query("SELECT run_id, COUNT(*) AS n FROM metrics GROUP BY run_id")
        assert sorted(r["n"] for r in per_run) == [1000] * 4
        assert store.query("SELECT COUNT(*) AS n FROM metrics")[0]["n"] == 4000
        assert store.query("SELECT COUNT(*) AS n FROM runs WHERE status = 'finished'")[0]["n"] == 4
        assert store.integrity_problems() == []


KILLED = textwrap.dedent("""
    import sys, time
    from forgekit.audit import open_store
    from forgekit.audit.schema import metrics, now
    dsn, namespace = sys.argv[1], sys.argv[2] or None
    store = open_store(dsn, namespace=namespace)
    run = store.start_run("killed")
    for epoch in range(10):
        store.log_metrics(run, epoch, {"loss": 1.0, "val_loss": 2.0})
    with store._write() as conn:  # the transaction the kill interrupts
        conn.execute(metrics.insert(), [{"run_id": run, "epoch": 100 + i, "name": "loss",
                                         "value": 0.0, "recorded_at": now()}
                                        for i in range(500)])
        print(run, flush=True)
        time.sleep(120)
""")


def test_a_writer_killed_mid_transaction_leaves_the_store_consistent(target):
    with target.open():
        pass
    proc = subprocess.Popen([sys.executable, "-c", KILLED, target.dsn, target.namespace or ""],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        line = proc.stdout.readline()
        assert line.strip().isdigit(), proc.stderr.read()
        run = int(line)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL
    with target.open() as store:
        assert store.integrity_problems() == []
        rows = store.query("SELECT COUNT(*) AS n, MAX(epoch) AS last FROM metrics "
                           "WHERE run_id = :r", r=run)[0]
        assert (rows["n"], rows["last"]) == (20, 9)  # the 10 committed epochs, none of the 500
        assert store.query("SELECT status FROM runs WHERE id = :r", r=run)[0]["status"] \
            == "running"  # it never ended: the audit trail shows a run that died
        store.log_metrics(run, 100, {"loss": 0.5})  # the dead writer holds no lock
        assert store.query("SELECT COUNT(*) AS n FROM metrics WHERE run_id = :r",
                           r=run)[0]["n"] == 21


def test_sqlite_store_uses_wal_and_a_busy_timeout(tmp_path):
    with open_store(tmp_path / "a.sqlite") as store:
        assert store.query("PRAGMA journal_mode")[0]["journal_mode"] == "wal"
        assert store.query("PRAGMA busy_timeout")[0]["timeout"] >= 1000
        assert store.query("PRAGMA foreign_keys")[0]["foreign_keys"] == 1


def test_metrics_for_a_missing_run_or_a_repeated_epoch_are_refused(store):
    run = store.start_run("r")
    store.log_metrics(run, 0, {"loss": 1.0})
    with pytest.raises(AuditError, match="already has metrics for epoch 0"):
        store.log_metrics(run, 0, {"loss": 0.5})
    with pytest.raises(NotRecordedError, match="no run with id 999"):
        store.log_metrics(999, 0, {"loss": 0.5})
    assert store.log_metrics(run, 1, {}) == 0
    assert store.query("SELECT COUNT(*) AS n FROM metrics")[0]["n"] == 1


def test_params_are_stored_as_sorted_json(store):
    run = store.start_run("p", params={"b": 2, "a": [1, 2]})
    assert json.loads(store.query("SELECT params FROM runs WHERE id = :r", r=run)[0]["params"]) \
        == {"a": [1, 2], "b": 2}


# ------------------------------------------------------------------------------ the lesson


@pytest.mark.notebook
@pytest.mark.slow
def test_lesson_08_runs_unchanged_on_postgresql(postgres, tmp_path, monkeypatch):
    """Same cells, other database: lesson 08's forgekit store with $FORGEKIT_AUDIT_DSN set."""
    from forgekit.course.runner import ci_parameters, run_notebook

    notebook = ROOT / "notebooks" / "08_audit_trail.ipynb"
    monkeypatch.setenv("FORGEKIT_AUDIT_DSN", postgres.dsn)
    params = {**ci_parameters(notebook), "output_dir": str(tmp_path / "artifacts")}
    result = run_notebook(notebook, tmp_path / notebook.name, params, strict_claims=True)
    assert result.ok, f"{notebook.name} on PostgreSQL failed at {result.failed_cell}"
    assert not (tmp_path / "artifacts" / "audit.sqlite").exists()  # section 6 wrote to the DSN
    # read-only: the store must already exist there, so section 6 created it on PostgreSQL
    with open_store(postgres.dsn, namespace="lesson_08", read_only=True) as store:
        # record_deployment refused version 1's folder (overwritten since it was hashed), so
        # neither an artifact nor a deployment was written
        assert store.query("SELECT COUNT(*) AS n FROM artifacts") == [{"n": 0}]
        assert store.query("SELECT COUNT(*) AS n FROM deployments") == [{"n": 0}]


OPENER = textwrap.dedent("""
    import sys
    from forgekit.audit import open_store
    sys.stdin.readline()
    with open_store(sys.argv[1], namespace=sys.argv[2] or None) as store:
        print(store.migrated)
""")


def test_four_processes_creating_the_same_store_at_once(target):
    """The first open creates the schema: concurrent first opens must not race on the DDL."""
    procs = [subprocess.Popen([sys.executable, "-c", OPENER, target.dsn, target.namespace or ""],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, cwd=ROOT) for _ in range(4)]
    outs = []
    for p in procs:
        p.stdin.write("go\n")
        p.stdin.flush()
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        outs.append(out.strip())
    assert sorted(outs) == ["[1, 2]", "[]", "[]", "[]"]  # exactly one created it
    with target.open() as store:
        assert store.query("SELECT COUNT(*) AS n FROM forgekit_schema")[0]["n"] == 2


# ------------------------------------------------------------------------------ hostile input
# Each case reproduces a finding of the adversarial pass (issue 23, items 7 and 8).


def test_nan_and_inf_metrics_are_kept_and_never_rank_first(store):
    run = store.start_run("diverged")
    store.log_metrics(run, 0, {"loss": float("nan"), "val_loss": float("inf"),
                               "delta": float("-inf"), "val_accuracy": float("nan")})
    store.log_metrics(run, 1, {"loss": float("nan"), "val_loss": 0.5,
                               "delta": 1.0, "val_accuracy": float("nan")})
    sane = store.start_run("sane")
    store.log_metrics(sane, 1, {"loss": 0.1, "val_loss": 0.2, "delta": 0.0,
                                "val_accuracy": 0.9})
    values = {(r["epoch"], r["name"]): r["value"] for r in store.query(
        "SELECT epoch, name, value FROM metrics WHERE run_id = :r", r=run)}
    assert len(values) == 8  # NaN was not turned into NULL (nor refused as a "repeated epoch")
    assert math.isnan(float(values[0, "loss"])) and float(values[0, "val_loss"]) == math.inf
    assert float(values[0, "delta"]) == -math.inf
    final, epoch = queries.final_metrics(store, run)
    assert epoch == 1 and math.isnan(final["loss"]) and final["val_loss"] == 0.5
    for metric in ("val_accuracy", "loss"):  # max and min: NaN is never the best run
        ranked = best_run(store, metric)
        assert ranked.best["run_id"] == sane and math.isnan(ranked.ranking[-1]["value"])
    assert "loss=nan" in str(queries.list_runs(store))


def test_text_postgresql_cannot_store_is_refused_on_both_backends(store):
    for bad in ("x" * 201, "a\x00b"):
        with pytest.raises(InvalidValueError) as err:
            store.start_run(bad)
        assert "Traceback" not in str(err.value) and "\x00" not in str(err.value)
    run = store.start_run("ok")
    with pytest.raises(InvalidValueError, match="metric name contains a NUL byte"):
        store.log_metrics(run, 0, {"lo\x00ss": 1.0})
    with pytest.raises(InvalidValueError, match="not a number"):
        store.log_metrics(run, 0, {"loss": "high"})
    with pytest.raises(InvalidValueError, match="detail contains a NUL byte"):
        store.record_verification(model_name="m", version=1, ok=True, detail="\x00")
    assert store.query("SELECT COUNT(*) AS n FROM runs")[0]["n"] == 1
    assert store.query("SELECT COUNT(*) AS n FROM metrics")[0]["n"] == 0


def test_escape_sequences_in_stored_names_are_printed_escaped(target):
    evil = "\x1b]0;owned\x07\x1b[2J\u202eevil"
    with target.open() as store:
        run = store.start_run(evil)
        store.log_metrics(run, 0, {"loss": 1.0})
    code, out, _ = _cli(target.cli_args() + ["runs"])
    assert code == 0 and "\x1b" not in out and "\u202e" not in out and "\x07" not in out
    assert "\\x1b]0;owned\\x07" in out and "\\u202eevil" in out


@pytest.mark.parametrize("dsn, secret", [
    ("postgresql://forgekit@127.0.0.1:{port}/audit?password=s3cret-q", "s3cret-q"),
    ("postgresql://forgekit@127.0.0.1:{port}/audit?sslmode=disable&password=s3cret-q", "s3cret-q"),
    ("postgresql://forgekit:p@ss-tail@127.0.0.1:{port}/audit", "ss-tail"),
    ("postgresql://forgekit:s3cret-p@127.0.0.1:x{port}/audit", "s3cret-p"),
    ("postgresql://forgekit:s3cret-p@[::1/audit", "s3cret-p"),
])
def test_a_dsn_never_prints_its_password_and_bad_ones_exit_2(dsn, secret):
    dsn = dsn.format(port=pg_server._free_port())  # nothing listens there
    with pytest.raises((StoreConfigError, StoreUnavailableError)) as err:
        open_store(dsn)
    assert secret not in str(err.value)
    code, out, stderr = _cli(["audit", "--dsn", dsn, "runs"])
    assert code == 2 and secret not in stderr + out and "Traceback" not in stderr
    if "@ss-tail" in dsn:
        assert "percent-encode '@'" in stderr and "%40" in stderr
    if "x" in dsn.split(":")[-1] or "[::1/" in dsn:
        assert "cannot be parsed" in stderr


def test_read_commands_never_create_a_store(tmp_path):
    missing = tmp_path / "missing" / "dir" / "x.sqlite"
    for command in (["check"], ["runs"], ["lineage", "m"]):
        code, _, stderr = _cli(["audit", "--db", str(missing), *command])
        assert code == 2 and "no audit store exists at this path" in stderr, stderr
    assert list(tmp_path.iterdir()) == []
    empty = tmp_path / "empty.sqlite"
    empty.touch()
    code, _, stderr = _cli(["audit", "--db", str(empty), "runs"])
    assert code == 2 and "empty SQLite database" in stderr and empty.stat().st_size == 0
    open_store(empty.with_name("new.sqlite")).close()
    with open_store(empty.with_name("new.sqlite"), read_only=True) as reader, \
            pytest.raises(StoreReadOnlyError, match="opened read-only"):
        reader.start_run("x")


def test_a_database_that_is_not_a_store_is_refused_and_left_alone(tmp_path):
    import sqlite3

    other = tmp_path / "app.sqlite"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)")
        conn.execute("CREATE TABLE users (id INTEGER PRIMARY KEY)")
    conn.close()
    before = other.read_bytes()
    with pytest.raises(StoreConfigError, match="not a forgekit audit store") as err:
        open_store(other)
    assert "2 other table(s): notes, users" in str(err.value)
    code, _, stderr = _cli(["audit", "--db", str(other), "check"])
    assert code == 2 and "notes, users" in stderr and "Traceback" not in stderr
    assert other.read_bytes() == before  # no tables added, journal mode not switched to WAL
    with sqlite3.connect(other) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    conn.close()


@pytest.mark.parametrize("damage", ["truncated", "bit-flipped"])
def test_a_damaged_store_is_named_damaged_and_kept(tmp_path, damage):
    db = tmp_path / "audit.sqlite"
    with open_store(db) as store:
        for i in range(3):
            store.log_metrics(store.start_run(f"r{i}" * 90), 0, {"loss": 1.0})
    data = bytearray(db.read_bytes())
    if damage == "truncated":
        data = data[: len(data) // 2]
    else:
        for i in range(100, len(data), 97):
            data[i] ^= 0xFF
    db.write_bytes(bytes(data))
    for opener in (lambda: open_store(db), lambda: open_store(db, read_only=True)):
        with pytest.raises((StoreCorruptError, StoreConfigError)) as err:
            opener()
        assert "Fix:" in str(err.value)
    code, _, stderr = _cli(["audit", "--db", str(db), "runs"])
    assert code == 2 and "Traceback" not in stderr and ("damaged" in stderr or "not an SQLite"
                                                        in stderr), stderr
    assert db.read_bytes() == bytes(data)


REFUSED_FILE = textwrap.dedent("""
    import sys
    from forgekit.audit import StoreConfigError, open_store
    from forgekit.cli import main
    try:
        open_store(sys.argv[1])  # a writer
    except StoreConfigError as exc:
        print(exc, file=sys.stderr)
    sys.exit(main(["audit", "--db", sys.argv[1], "runs"]))  # a reader
""")


@pytest.mark.parametrize("kind", ["fifo", "/dev/zero", "folder"])
def test_a_path_that_is_not_a_regular_file_is_refused_without_opening_it(tmp_path, kind):
    if kind == "fifo":
        path = tmp_path / "pipe.sqlite"
        os.mkfifo(path)
    elif kind == "folder":
        path = tmp_path / "store.sqlite"
        path.mkdir()
    else:
        path = Path(kind)
    # opening a FIFO can block forever, /dev/zero reads without end: a child with a timeout
    proc = subprocess.run([sys.executable, "-c", REFUSED_FILE, str(path)], capture_output=True,
                          text=True, cwd=ROOT, timeout=60)
    assert proc.returncode == 2 and proc.stderr.count("must be a regular file") == 2, proc.stderr
    assert "Traceback" not in proc.stderr


def test_postgres_read_commands_create_no_schema_and_foreign_tables_are_refused(postgres):
    namespace = f"t_{uuid.uuid4().hex[:12]}"
    code, _, stderr = _cli(["audit", "--dsn", postgres.dsn, "--namespace", namespace, "runs"])
    assert code == 2 and "no audit store here" in stderr, stderr
    engine = sa.create_engine(resolve_url(postgres.dsn))
    try:
        with engine.begin() as conn:
            assert conn.execute(sa.text("SELECT COUNT(*) FROM information_schema.schemata "
                                        "WHERE schema_name = :n"), {"n": namespace}).scalar() == 0
            conn.execute(sa.text(f"CREATE SCHEMA {namespace}"))
            conn.execute(sa.text(f"CREATE TABLE {namespace}.runs (id INTEGER, who TEXT)"))
        with pytest.raises(StoreConfigError, match="tables named like the audit store's") as err:
            open_store(postgres.dsn, namespace=namespace)
        assert "runs without forgekit_schema" in str(err.value)
        with engine.begin() as conn:
            tables = conn.execute(sa.text(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = :n"),
                {"n": namespace}).scalars().all()
        assert tables == ["runs"]
    finally:
        engine.dispose()
    with open_store(postgres.dsn, namespace=namespace + "_ok") as store:
        store.start_run("writer")
    with open_store(postgres.dsn, namespace=namespace + "_ok", read_only=True) as reader:
        assert [r["name"] for r in reader.query("SELECT name FROM runs")] == ["writer"]
        with pytest.raises(StoreReadOnlyError):
            reader.start_run("refused")
        with pytest.raises(StoreReadOnlyError):  # the server itself refuses, not just forgekit
            reader.query("INSERT INTO runs (name, status, params, versions, started_at) "
                         "VALUES ('x', 'x', '{}', '{}', CURRENT_TIMESTAMP)")
