"""Audit store write rates on SQLite and PostgreSQL, and AuditCallback's cost per epoch.

* metric rows/s, three transaction shapes: one row per transaction (the worst case), one epoch
  of 4 metrics per transaction (what AuditCallback writes), 1,000 rows per transaction (bulk);
* AuditCallback overhead: the time spent inside its ``on_epoch_end`` (one transaction of the
  epoch's logs) on a small model, per epoch, and the whole fit's time per epoch with and without
  the callback (target: <= 5 ms per epoch on SQLite).

PostgreSQL: ``$FORGEKIT_AUDIT_DSN`` if set, else a throwaway local server (tests/pg_server.py)
started with its default, crash-safe settings (fsync on). SQLite: a WAL file with
synchronous=NORMAL in a temp folder. Client and server share this machine's cores.

    .venv/bin/python benchmarks/bench_audit.py [--rows 2000] [--epochs 40]

A benchmark, not a test: nothing is asserted.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # for tests.pg_server

from forgekit.audit import open_store  # noqa: E402
from forgekit.audit.schema import metrics, now  # noqa: E402


def rates(store, rows: int) -> dict[str, float]:
    """Metric rows per second for each transaction shape."""
    out = {}
    run = store.start_run("bench")
    t = time.perf_counter()
    for i in range(rows):
        store.log_metrics(run, i, {"loss": 1.0})
    out["1 row / transaction"] = rows / (time.perf_counter() - t)
    run = store.start_run("bench")
    t = time.perf_counter()
    for i in range(rows // 4):
        store.log_metrics(run, i, {"loss": 1.0, "accuracy": 0.5, "val_loss": 1.1,
                                   "val_accuracy": 0.4})
    out["4 rows / transaction (an epoch)"] = (rows // 4 * 4) / (time.perf_counter() - t)
    run = store.start_run("bench")
    t = time.perf_counter()
    for start in range(0, rows * 5, 1000):
        batch = [{"run_id": run, "epoch": i, "name": "loss", "value": 1.0, "recorded_at": now()}
                 for i in range(start, start + 1000)]
        with store._write() as conn:
            conn.execute(metrics.insert(), batch)
    out["1000 rows / transaction"] = rows * 5 / (time.perf_counter() - t)
    return out


def callback_overhead(store, epochs: int) -> dict[str, float]:
    """ms per epoch: inside on_epoch_end, and whole-fit time with minus without the callback."""
    from forgekit.quiet import quiet_tf

    quiet_tf()
    from forgekit.audit import AuditCallback
    from forgekit.training import build_model, make_task

    task = make_task(n_train=256, n_val=256, n_features=16)

    class Timed(AuditCallback):
        def on_epoch_end(self, epoch, logs=None):
            t = time.perf_counter()
            super().on_epoch_end(epoch, logs)
            self.spent.append(time.perf_counter() - t)

    def fit(callbacks):
        model = build_model(task, width=16)
        model.fit(task.x_train, task.y_train, epochs=2, batch_size=64, verbose=0)  # warm-up
        t = time.perf_counter()
        model.fit(task.x_train, task.y_train, validation_data=task.validation_data,
                  epochs=epochs, batch_size=64, verbose=0, callbacks=callbacks)
        return (time.perf_counter() - t) / epochs * 1e3

    timed = Timed(store, "overhead")
    timed.spent = []
    plain, with_cb = [], []
    for _ in range(3):  # interleaved, median: the machine is shared
        plain.append(fit([]))
        timed.spent.clear()
        with_cb.append(fit([timed]))
    return {"on_epoch_end median (ms)": statistics.median(timed.spent) * 1e3,
            "on_epoch_end p95 (ms)": sorted(timed.spent)[int(0.95 * len(timed.spent))] * 1e3,
            "fit ms/epoch without": statistics.median(plain),
            "fit ms/epoch with": statistics.median(with_cb)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2000)
    parser.add_argument("--epochs", type=int, default=40)
    args = parser.parse_args()

    folder = Path(tempfile.mkdtemp(prefix="bench-audit-"))
    backends = {"sqlite": lambda: open_store(folder / "audit.sqlite")}
    server = None
    dsn = os.environ.get("FORGEKIT_AUDIT_DSN")
    if not dsn:
        from tests import pg_server

        try:
            server = pg_server.start(durable=True)
            dsn = server.dsn
        except pg_server.ServerUnavailable as exc:
            print(f"PostgreSQL skipped: {exc}")
    if dsn:
        ns = f"bench_{uuid.uuid4().hex[:8]}"
        backends["postgresql"] = lambda: open_store(dsn, namespace=ns)
    try:
        print(f"metric rows per second ({args.rows} rows per shape; 5x that for bulk)")
        for name, opener in backends.items():
            with opener() as store:
                for shape, value in rates(store, args.rows).items():
                    print(f"  {name:<11} {shape:<34} {value:>10,.0f} rows/s")
        print(f"\nAuditCallback, small MLP, {args.epochs} epochs x 3 fits")
        for name, opener in backends.items():
            with opener() as store:
                for what, value in callback_overhead(store, args.epochs).items():
                    print(f"  {name:<11} {what:<26} {value:8.2f}")
    finally:
        if server:
            server.stop()
        import shutil

        shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
