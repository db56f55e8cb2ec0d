"""`make drift`: the course on the next TensorFlow, compared verdict by verdict with the pins.

1. Resolve the lock again with TensorFlow, Keras and tf-keras unpinned (newest on PyPI), or
   with the requirements given by ``--with`` (``--with "keras==3.12.*"``). Every other package
   keeps its locked version unless the new ones force it to move.
2. If that changes nothing the report says so and stops: the newest releases are the pins.
3. Otherwise install it into a second venv (``.venv-drift``), execute every notebook there and
   with the pins (CI parameters, claims not fatal: a claim that stops holding is recorded, the
   notebook goes on), and compare each notebook's status and each checked claim's verdict.
4. Write ``build/drift/drift.md`` and ``build/drift/drift.json``.

Exit status 0 whenever the report was written, whatever it says: drift is news, not a failure.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # `python tools/drift.py`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tools import lock

ROOT = lock.ROOT
DRIFTING = ("tensorflow", "keras", "tf-keras")  # unpinned by default; everything else as locked


# ---------------------------------------------------------------- what to install instead

def overrides(requested: Iterable[str] = ()) -> list[str]:
    """One requirement per drifting package: the newest, unless ``requested`` names it."""
    from packaging.requirements import InvalidRequirement, Requirement

    chosen = {lock.normalize(name): name for name in DRIFTING}
    for req in requested:
        try:
            chosen[lock.normalize(Requirement(req).name)] = req.strip()
        except InvalidRequirement as exc:
            raise SystemExit(f"--with {req!r}: not a requirement (expected e.g. "
                             f"'keras==3.12.*'): {exc}") from None
    return [chosen[name] for name in sorted(chosen)]


def moved(locked: Mapping[str, str], tried: Mapping[str, str]) -> dict[str, tuple[str | None,
                                                                                   str | None]]:
    """``{name: (locked version, tried version)}`` for every package whose version differs."""
    return {name: (locked.get(name), tried.get(name))
            for name in sorted(set(locked) | set(tried)) if locked.get(name) != tried.get(name)}


# ---------------------------------------------------------------- comparing two course runs

def _claim_keys(claims: Sequence[Mapping[str, Any]]) -> dict[tuple[str, str, int], Mapping]:
    """Claims keyed by (notebook, text, n-th time this text was claimed in that notebook)."""
    seen: Counter[tuple[str, str]] = Counter()
    keyed = {}
    for c in claims:
        base = (str(c.get("notebook")), str(c.get("text")))
        keyed[(*base, seen[base])] = c
        seen[base] += 1
    return keyed


def compare(pinned_report: Sequence[Mapping[str, Any]], pinned_claims: Sequence[Mapping[str, Any]],
            tried_report: Sequence[Mapping[str, Any]], tried_claims: Sequence[Mapping[str, Any]],
            ) -> dict[str, Any]:
    """What changed between two runs of the course (rows of report.json, rows of claims.json)."""
    before = {r["notebook"]: r for r in pinned_report}
    after = {r["notebook"]: r for r in tried_report}
    notebooks = []
    for name in sorted(set(before) | set(after)):
        b, a = before.get(name, {}), after.get(name, {})
        notebooks.append({"notebook": name, "pinned": b.get("status", "not run"),
                          "tried": a.get("status", "not run"),
                          "seconds": [b.get("seconds"), a.get("seconds")],
                          "failed_cell": a.get("failed_cell"),
                          "changed": b.get("status") != a.get("status")})
    old, new = _claim_keys(pinned_claims), _claim_keys(tried_claims)

    def row(key: tuple[str, str, int]) -> dict[str, Any]:
        b, a = old.get(key), new.get(key)
        return {"notebook": key[0], "text": key[1],
                "pinned": b.get("verdict") if b else None, "tried": a.get("verdict") if a else None,
                "evidence": [b.get("evidence") if b else None, a.get("evidence") if a else None]}

    both = [k for k in old if k in new]
    return {
        "notebooks": notebooks,
        "claims_changed": [row(k) for k in both if old[k].get("holds") != new[k].get("holds")],
        "claims_unchanged": sum(1 for k in both if old[k].get("holds") == new[k].get("holds")),
        "claims_only_pinned": [row(k) for k in old if k not in new],
        "claims_only_tried": [row(k) for k in new if k not in old],
    }


def _versions(packages: Mapping[str, str]) -> str:
    return ", ".join(f"{n} {packages.get(n, '-')}" for n in DRIFTING)


def _cell(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False) if isinstance(value, dict | list) else str(value)
    return text.replace("|", "\\|").replace("\n", " ")


def render(report: Mapping[str, Any]) -> str:
    """The markdown report (also the GitHub job summary)."""
    lines = ["# The course on the next TensorFlow", "",
             f"- checked: {report.get('checked_at', '-')}",
             f"- pinned (requirements.lock): {_versions(report['pinned'])}",
             f"- tried: {_versions(report['tried'])}"
             + (f" (asked for: {', '.join(report['requested'])})" if report["requested"] else
                " (newest on PyPI)")]
    others = {n: v for n, v in report["moved"].items() if n not in DRIFTING}
    if others:
        lines.append("- other packages that had to move: " + ", ".join(
            f"{n} {a or '-'} → {b or '-'}" for n, (a, b) in others.items()))
    lines.append("")
    if report["same_as_pinned"]:
        lines += ["**The versions tried are the pinned ones**: nothing to re-measure. "
                  "The course as locked is the course on the newest TensorFlow.", ""]
        return "\n".join(lines)
    result = report["comparison"]
    changed_nb = [n for n in result["notebooks"] if n["changed"]]
    lines += [f"**{len(changed_nb)} notebook(s) changed status, "
              f"{len(result['claims_changed'])} claim(s) changed verdict**, "
              f"{result['claims_unchanged']} claim(s) kept theirs; "
              f"{len(result['claims_only_pinned'])} claim(s) were not reached on the version "
              f"tried, {len(result['claims_only_tried'])} appeared only there.", ""]
    if not (result["claims_unchanged"] or result["claims_changed"] or result["claims_only_pinned"]
            or result["claims_only_tried"]):
        lines += ["No notebook checked a claim in either run: only their status was compared.", ""]
    lines += ["## Notebooks", "",
              "| notebook | pinned | tried | seconds (pinned / tried) | failed cell (tried) |",
              "|---|---|---|---|---|"]
    for n in result["notebooks"]:
        mark = " ⚠" if n["changed"] else ""
        secs = " / ".join("-" if s is None else f"{s:.1f}" for s in n["seconds"])
        lines.append(f"| {n['notebook']} | {n['pinned']} | {n['tried']}{mark} | {secs} | "
                     f"{_cell(n['failed_cell'] or '')} |")
    for title, rows in (("Claims that changed verdict", result["claims_changed"]),
                        ("Claims not reached on the version tried", result["claims_only_pinned"]),
                        ("Claims made only on the version tried", result["claims_only_tried"])):
        if not rows:
            continue
        lines += ["", f"## {title}", "", "| notebook | claim | pinned | tried | evidence "
                  "(pinned) | evidence (tried) |", "|---|---|---|---|---|---|"]
        lines += [f"| {r['notebook']} | {_cell(r['text'])} | {r['pinned'] or '-'} | "
                  f"{r['tried'] or '-'} | {_cell(r['evidence'][0] or '')} | "
                  f"{_cell(r['evidence'][1] or '')} |" for r in rows]
    return "\n".join(lines) + "\n"


def write(report: Mapping[str, Any], out: Path) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    (out / "drift.json").write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n",
                                    encoding="utf-8")
    page = out / "drift.md"
    page.write_text(render(report), encoding="utf-8")
    return page


# ---------------------------------------------------------------- running it

def _run(cmd: Sequence[str], **kw: Any) -> None:
    print("+", " ".join(map(str, cmd)), flush=True)
    subprocess.run(list(map(str, cmd)), check=True, env=lock.uv_environment(), **kw)


def resolve(out: Path, requested: Sequence[str]) -> Path:
    """The lock re-resolved with the drifting packages overridden (other versions kept)."""
    out.mkdir(parents=True, exist_ok=True)
    target = out / "requirements.drift.txt"
    shutil.copy(ROOT / lock.LOCK_NAME, target)  # preferences: keep every version that still fits
    spec = out / "overrides.txt"
    spec.write_text("\n".join(overrides(requested)) + "\n", encoding="utf-8")
    upgrades = [arg for name in DRIFTING for arg in ("--upgrade-package", name)]
    lock.compile_lock(target, ROOT, f"--override={spec}", *upgrades)
    return target


def install(requirements: Path, venv: Path) -> Path:
    """A venv holding exactly ``requirements`` plus forgekit, with its own python3 kernel."""
    python = venv / "bin" / "python"
    uv = lock.uv()
    if not python.exists():
        _run([uv, "venv", "--quiet", "--python", sys.executable, venv])
    _run([uv, "pip", "sync", "--quiet", "--compile-bytecode", "--python", python,
          "--require-hashes", requirements])  # .pyc now: `make` forbids writing them later
    _run([uv, "pip", "install", "--quiet", "--python", python, "--no-deps", "-e", ROOT])
    _run([python, "-m", "ipykernel", "install", "--sys-prefix", "--name", "python3"],
         stdout=subprocess.DEVNULL)
    kernel = subprocess.run(
        [python, "-c", "from jupyter_client.kernelspec import KernelSpecManager as K;"
         "print(K().get_kernel_spec('python3').argv[0])"],
        capture_output=True, text=True, check=True).stdout.strip()
    # abspath, not resolve(): a venv's python is a symlink to the base interpreter.
    if not Path(os.path.abspath(kernel)).is_relative_to(os.path.abspath(venv)):
        raise RuntimeError(f"the python3 kernel of {venv} runs {kernel}, not {python}: a user-wide "
                           "kernelspec shadows it (jupyter kernelspec list)")
    return python


def run_course(python: Path, notebooks: Path, out: Path) -> tuple[list, list]:
    """Every notebook with CI parameters, claims recorded but not fatal; report + claims rows."""
    env = {**os.environ, "FORGEKIT_STRICT_CLAIMS": "0"}
    print(f"+ {python} -m forgekit.cli run {notebooks} --ci --out {out}", flush=True)
    subprocess.run([str(python), "-m", "forgekit.cli", "run", str(notebooks), "--ci",
                    "--out", str(out)], env=env, cwd=ROOT)  # non-zero when a notebook failed
    report, claims = out / "report.json", out / "claims.json"
    if not report.exists():
        raise RuntimeError(f"{python} wrote no {report}: the course did not run at all")
    return (json.loads(report.read_text(encoding="utf-8")),
            json.loads(claims.read_text(encoding="utf-8")) if claims.exists() else [])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make drift", description=__doc__.splitlines()[0])
    parser.add_argument("--with", dest="requested", action="append", default=[],
                        metavar="REQ", help='try REQ instead of the newest, e.g. "keras==3.12.*"')
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "drift")
    parser.add_argument("--venv", type=Path, default=ROOT / ".venv-drift")
    parser.add_argument("--notebooks", type=Path, default=ROOT / "notebooks")
    parser.add_argument("--pinned-run", type=Path, default=None,
                        help="reuse this earlier pinned run (its report.json and claims.json)")
    parser.add_argument("--force", action="store_true",
                        help="run the notebooks even when the versions tried are the pins")
    args = parser.parse_args(argv)

    tried_lock = resolve(args.out, args.requested)
    pinned = lock.installable(ROOT / lock.LOCK_NAME)
    tried = lock.installable(tried_lock)
    report: dict[str, Any] = {
        "checked_at": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"), "requested": args.requested, "pinned": {n: pinned.get(n) for n in DRIFTING},
        "tried": {n: tried.get(n) for n in DRIFTING}, "moved": moved(pinned, tried),
        "same_as_pinned": not moved(pinned, tried), "comparison": None}
    if report["same_as_pinned"] and not args.force:
        print(f"wrote {write(report, args.out)}: the versions tried are the pinned ones")
        return 0
    python = install(tried_lock, args.venv)
    if args.pinned_run:
        base_report = json.loads((args.pinned_run / "report.json").read_text(encoding="utf-8"))
        base_claims = json.loads((args.pinned_run / "claims.json").read_text(encoding="utf-8"))
    else:
        base_report, base_claims = run_course(Path(sys.executable), args.notebooks,
                                              args.out / "pinned")
    new_report, new_claims = run_course(python, args.notebooks, args.out / "tried")
    report["comparison"] = compare(base_report, base_claims, new_report, new_claims)
    page = write(report, args.out)
    print(page.read_text(encoding="utf-8"))
    print(f"wrote {page} and {page.with_suffix('.json')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
