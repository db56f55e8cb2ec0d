"""``forgekit doctor``: one place to ask "what is wrong here?".

Without a path it reports the environment (versions, devices, memory, known-bad combinations).
"""

from __future__ import annotations

import os

from forgekit.environment import EnvironmentReport, environment_report


def doctor(path: str | os.PathLike[str] | None = None,
           check_devices: bool = True) -> EnvironmentReport:
    """Diagnose the environment. Display the result in a notebook or ``print`` it."""
    if path is not None:
        raise NotImplementedError("artifact diagnosis arrives with the failure-lab lesson")
    return environment_report(check_devices=check_devices)
