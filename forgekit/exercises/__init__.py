"""Self-checked exercises: each lesson's checkers live in a module here, named after the lesson.

A checker takes the learner's answer and returns :class:`Feedback` that says *why* an answer is
wrong, not only that it is.

Solutions are cells that start with ``%%solution`` (after ``%load_ext forgekit.exercises`` in
the setup cell). A learner who runs the notebook top to bottom does not get the exercise solved:
the cell prints how to run it instead. The runner (tests, ``make run``) sets
``$FORGEKIT_RUN_SOLUTIONS=1`` so every solution and its checker are executed.
"""

from __future__ import annotations

import marshal
import os
import pickle
import tempfile
import types
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from forgekit.table import marked_html

SOLUTIONS_ENV = "FORGEKIT_RUN_SOLUTIONS"
SKIPPED = ("Solution not run: it stays out of your way when you run the whole notebook. "
           "Try the exercise first; to run this solution, write `%%solution run` on its first line.")


@dataclass(frozen=True, repr=False)
class Feedback:
    """The verdict on an exercise answer."""

    passed: bool
    message: str

    def __bool__(self) -> bool:
        return self.passed

    def __str__(self) -> str:
        # "→", not "✗": a ✗ in a lesson means a claim failed on your versions; this is feedback
        # on your own answer.
        return ("✓ Correct. " if self.passed else "→ Not yet. ") + self.message

    __repr__ = __str__

    def _repr_html_(self) -> str:
        return marked_html(str(self), "div", "font-weight:600")


def correct(message: str) -> Feedback:
    """A passing verdict that says why the answer is right."""
    return Feedback(True, message)


def wrong(message: str) -> Feedback:
    """A failing verdict that says why the answer is wrong."""
    return Feedback(False, message)


NOT_ANSWERED = Feedback(False, "No answer yet: replace the placeholder in the cell above and run it again.")


def check_guess(guess: Any, measured: str, choices: Iterable[str], why: str) -> Feedback:
    """Compare the learner's typed ``guess`` (one of ``choices``) with the ``measured`` answer.

    ``why`` is the measurement in words, shown whatever the guess: a right guess is confirmed
    with the numbers, a wrong one is told what happened instead, no guess is told to type one.
    """
    options = tuple(choices)
    if guess is None:
        return wrong(f"You typed no guess, so there is nothing to check. Measured: {measured}. "
                     f"{why}")
    if str(guess).strip().lower() not in options:
        return wrong(f"Your guess {guess!r} is not one of {list(options)}. Measured: {measured}. "
                     f"{why}")
    if str(guess).strip().lower() != measured:
        return wrong(f"You guessed {guess!r}; the cell measured {measured!r}. {why}")
    return correct(f"You guessed {measured!r}, and that is what the cell measured. {why}")


def _names(code: types.CodeType) -> set[str]:
    names = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= _names(const)
    return names


def shippable(function: Any, role: str) -> tuple[dict[str, Any] | None, str | None]:
    """A learner's function as marshalled code plus how to rebuild the globals it uses (imports by
    name, picklable values), for a checker's fresh process; or why it cannot travel."""
    if function.__closure__:
        return None, (f"{role} uses variables of an enclosing function; define it at the top "
                      "level of a cell, with what it needs imported or passed in.")
    imports, values = {}, {}
    for name in _names(function.__code__):
        if name not in function.__globals__:
            continue  # a builtin, an attribute, or a name defined inside
        obj = function.__globals__[name]
        if isinstance(obj, types.ModuleType):
            imports[name] = (obj.__name__, "")
        elif getattr(obj, "__module__", "__main__") not in ("__main__", None) and hasattr(
                obj, "__qualname__"):
            imports[name] = (obj.__module__, obj.__qualname__)
        else:
            try:
                pickle.dumps(obj)
            except Exception:
                return None, (f"{role} uses {name!r}, defined in the notebook; the checker runs "
                              "your function in a fresh process, so import or define what it "
                              "needs inside the function.")
            values[name] = obj
    return {"code": marshal.dumps(function.__code__), "imports": imports, "values": values,
            "defaults": function.__defaults__}, None


def revive(shipped: dict[str, Any], name: str) -> Any:
    """The function :func:`shippable` packed, rebuilt in this (fresh) process."""
    import importlib

    namespace = {"__builtins__": __builtins__, **shipped["values"]}
    for key, (module, attr) in shipped["imports"].items():
        obj = importlib.import_module(module)
        for part in attr.split(".") if attr else ():
            obj = getattr(obj, part)
        namespace[key] = obj
    return types.FunctionType(marshal.loads(shipped["code"]), namespace, name, shipped["defaults"])


def is_placeholder(function: Any) -> bool:
    """True for a function whose body is still only the exercise's ``...`` (or ``pass``)."""
    code = getattr(function, "__code__", None)
    return code is not None and code.co_code == _placeholder.__code__.co_code \
        and code.co_consts[:1] in ((None,), (Ellipsis,), ()) and not code.co_names


def unused_path(folder: str | os.PathLike[str] | None, prefix: str, stem: str = "try") -> Path:
    """``folder/<stem>_N`` for the first N not taken (a new temporary folder when ``folder`` is
    None): each checker run works in a path nothing has used, and this does not create it."""
    base = Path(folder) if folder is not None else Path(tempfile.mkdtemp(prefix=prefix))
    return next(base / f"{stem}_{n}" for n in range(1, 10_000) if not (base / f"{stem}_{n}").exists())


def _placeholder(*args: Any) -> None:
    ...


def solution(line: str, cell: str, namespace: dict[str, Any]) -> bool:
    """Run a solution cell's ``cell`` body in ``namespace`` only when asked; True if it ran.

    It runs under ``$FORGEKIT_RUN_SOLUTIONS=1`` or when the magic's line says ``run``.
    Exceptions propagate, so a failing solution fails its cell (and CI).
    """
    if os.environ.get(SOLUTIONS_ENV) == "1" or line.strip() == "run":
        exec(compile(cell, "<solution>", "exec"), namespace)  # noqa: S102 - the learner's own cell
        return True
    print(SKIPPED)
    return False


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext forgekit.exercises`` registers the ``%%solution`` cell magic."""

    def _magic(line: str, cell: str) -> None:
        solution(line, cell, ipython.user_ns)

    ipython.register_magic_function(_magic, magic_kind="cell", magic_name="solution")
