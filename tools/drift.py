"""`make drift`: the course at both ends of its supported range, compared verdict by verdict
with the pins.

By default a matrix of two variants (MATRIX below); ``--with REQ`` tries one set of
requirements instead (``--with "keras==3.12.*"``).

- ``newest``: the lock resolved again with TensorFlow, Keras and tf-keras unpinned (newest on
  PyPI); every other package keeps its locked version unless the new ones force it to move.
  When that changes nothing the report says so: the newest releases are the pins.
- ``previous``: a Colab-like environment - a fresh venv on another Python with the previous
  TensorFlow release and its Keras already installed, as a hosted runtime ships them - into which
  forgekit is installed from a wheel built from the checkout, the way a learner's ``pip install``
  would. The report records whether that install replaced the TensorFlow already there.

Each variant runs every notebook (CI parameters, claims not fatal: a claim that stops holding is
recorded, the notebook goes on) and is compared with the pinned run, notebook status by status
and claim verdict by verdict, into ``build/drift/drift.md`` and ``build/drift/drift.json``.

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
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # `python tools/drift.py`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tools import lock

ROOT = lock.ROOT
DRIFTING = ("tensorflow", "keras", "tf-keras")  # unpinned by default; everything else as locked


@dataclass(frozen=True)
class Variant:
    """One environment the course is tried in."""

    name: str
    requested: tuple[str, ...] = ()
    python: str | None = None  # e.g. "3.12": another interpreter than the pinned run's
    colab_like: bool = False  # preinstalled stack + forgekit from a wheel, not the lock


# The ends of the supported range (README, "Supported versions"). The previous release is tried
# the way Colab runs it: Python 3.12, TensorFlow preinstalled, forgekit pip-installed on top.
MATRIX = (
    Variant("previous", ("tensorflow==2.20.*", "tf-keras==2.20.*",
                         "tensorflow-serving-api==2.20.*", "keras==3.10.*"),
            python="3.12", colab_like=True),
    Variant("newest"),
)


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
    title = f"`{report['variant']}`: " if report.get("variant") else ""
    lines = [f"# {title}the course on {_versions(report['tried'])}", "",
             f"- checked: {report.get('checked_at', '-')}",
             f"- pinned (requirements.lock): {_versions(report['pinned'])}",
             f"- tried: {_versions(report['tried'])}"
             + (f" (asked for: {', '.join(report['requested'])})" if report["requested"] else
                " (newest on PyPI)")]
    if report.get("install"):
        lines.append(f"- installed as: {report['install']}")
    others = {n: v for n, v in report["moved"].items() if n not in DRIFTING}
    if report.get("install") or not others:
        others = {}
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


def write(reports: Mapping[str, Any] | Sequence[Mapping[str, Any]], out: Path) -> Path:
    """``drift.json`` (the reports) and ``drift.md`` (each rendered, one section a variant)."""
    reports = [reports] if isinstance(reports, Mapping) else list(reports)
    out.mkdir(parents=True, exist_ok=True)
    (out / "drift.json").write_text(json.dumps(reports, indent=2, ensure_ascii=False) + "\n",
                                    encoding="utf-8")
    page = out / "drift.md"
    page.write_text("\n".join(render(r) for r in reports), encoding="utf-8")
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
    return _own_kernel(python, venv)


def find_python(version: str) -> str:
    """An interpreter of ``version`` ("3.12"): $DRIFT_PYTHON_3_12, else one uv can find."""
    named = os.environ.get(f"DRIFT_PYTHON_{version.replace('.', '_')}")
    if named:
        return named
    found = subprocess.run([lock.uv(), "python", "find", "--system", version],
                           capture_output=True, text=True, env=lock.uv_environment())
    if found.returncode != 0 or not found.stdout.strip():
        raise SystemExit(f"no Python {version} found for the drift matrix: install one or set "
                         f"DRIFT_PYTHON_{version.replace('.', '_')}=/path/to/python{version}")
    return found.stdout.strip()


def _stack(python: Path) -> dict[str, str | None]:
    code = ("import json; from importlib.metadata import version as v\n"
            "def get(n):\n    try: return v(n)\n    except Exception: return None\n"
            f"print(json.dumps({{n: get(n) for n in {list(DRIFTING)!r}}}))")
    return json.loads(subprocess.run([str(python), "-c", code], capture_output=True, text=True,
                                     check=True).stdout)


def install_colab_like(variant: Variant, venv: Path, out: Path) -> tuple[Path, dict[str, Any]]:
    """A hosted-notebook runtime, simulated: ``variant.requested`` preinstalled from PyPI into a
    fresh venv, then forgekit (with its ``course`` extra, to execute the notebooks) from a wheel
    built from this checkout, by plain pip. Returns the python and what the install did."""
    uv = lock.uv()
    python = venv / "bin" / "python"
    base = find_python(variant.python or "3.12")
    if not python.exists():
        _run([uv, "venv", "--quiet", "--seed", "--python", base, venv])
    # .pyc now, as a hosted runtime ships them (`make` forbids writing them later).
    _run([uv, "pip", "install", "--quiet", "--compile-bytecode", "--python", python,
          *variant.requested, "ipykernel"])
    before = _stack(python)
    wheels = out / "wheel"
    shutil.rmtree(wheels, ignore_errors=True)  # our own build folder under build/drift
    _run([uv, "build", "--quiet", "--wheel", "--out-dir", wheels, ROOT])
    [wheel] = wheels.glob("forgekit-*.whl")
    # A forgekit left by an earlier try has the same version: pip would keep it, not this build.
    _run([python, "-m", "pip", "uninstall", "--quiet", "--yes", "forgekit"])
    _run([python, "-m", "pip", "install", "--quiet", f"--index-url={lock.PYPI}",
          f"forgekit[course] @ {wheel.resolve().as_uri()}"])
    after = _stack(python)
    kept = before == after
    note = (f"Python {variant.python}, {', '.join(variant.requested)} preinstalled, then "
            f"`pip install {wheel.name}[course]`: "
            + ("the TensorFlow stack already there was kept" if kept else
               f"the install REPLACED the stack: {before} -> {after}"))
    return _own_kernel(python, venv), {"before": before, "after": after, "kept": kept,
                                       "note": note}


def _own_kernel(python: Path, venv: Path) -> Path:
    """Register ``venv``'s python as its own ``python3`` kernel (papermill runs that name)."""
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


def try_variant(variant: Variant, args: argparse.Namespace,
                pinned_run: tuple[list, list] | None) -> tuple[dict[str, Any], tuple[list, list]]:
    """Resolve, install and run one variant; its report, and the pinned run (made once)."""
    out = args.out / variant.name
    tried_lock = resolve(out, variant.requested)
    pinned = lock.installable(ROOT / lock.LOCK_NAME)
    tried = lock.installable(tried_lock)
    report: dict[str, Any] = {
        "variant": variant.name, "checked_at": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "requested": list(variant.requested), "pinned": {n: pinned.get(n) for n in DRIFTING},
        "tried": {n: tried.get(n) for n in DRIFTING}, "moved": moved(pinned, tried),
        "same_as_pinned": not moved(pinned, tried), "comparison": None}
    if report["same_as_pinned"] and not args.force:
        return report, pinned_run
    venv = args.venv.with_name(f"{args.venv.name}-{variant.name}")
    if variant.colab_like:
        python, done = install_colab_like(variant, venv, out)
        report["tried"] = done["after"]
        report["install"] = done["note"]
        report["kept_preinstalled_stack"] = done["kept"]
    else:
        python = install(tried_lock, venv)
    if pinned_run is None:
        if args.pinned_run:
            pinned_run = (json.loads((args.pinned_run / "report.json").read_text(encoding="utf-8")),
                          json.loads((args.pinned_run / "claims.json").read_text(encoding="utf-8")))
        else:
            pinned_run = run_course(Path(sys.executable), args.notebooks, args.out / "pinned")
    new_report, new_claims = run_course(python, args.notebooks, out / "run")
    report["comparison"] = compare(*pinned_run, new_report, new_claims)
    return report, pinned_run


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make drift", description=__doc__.splitlines()[0])
    parser.add_argument("--with", dest="requested", action="append", default=[],
                        metavar="REQ", help='try REQ instead of the matrix, e.g. "keras==3.12.*"')
    parser.add_argument("--only", choices=[v.name for v in MATRIX], action="append",
                        help="run only this variant of the matrix (repeatable)")
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "drift")
    parser.add_argument("--venv", type=Path, default=ROOT / ".venv-drift")
    parser.add_argument("--notebooks", type=Path, default=ROOT / "notebooks")
    parser.add_argument("--pinned-run", type=Path, default=None,
                        help="reuse this earlier pinned run (its report.json and claims.json)")
    parser.add_argument("--force", action="store_true",
                        help="run the notebooks even when the versions tried are the pins")
    args = parser.parse_args(argv)

    variants = ([Variant("requested", tuple(args.requested))] if args.requested else
                [v for v in MATRIX if not args.only or v.name in args.only])
    reports, pinned_run = [], None
    for variant in variants:
        report, pinned_run = try_variant(variant, args, pinned_run)
        reports.append(report)
        write(reports, args.out)  # after each variant: a long matrix keeps what it measured
    page = write(reports, args.out)
    print(page.read_text(encoding="utf-8"))
    print(f"wrote {page} and {page.with_suffix('.json')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
