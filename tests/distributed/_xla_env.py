"""Environment of the simulated-device subprocesses of tests/distributed.

XLA's CPU collectives are in-process rendezvous: every device thread of a program waits at
each all-reduce until all the others arrive. A thread that waits longer than
``xla_cpu_collective_call_warn_stuck_timeout_seconds`` (default 20 s) logs a warning, and
``xla_cpu_collective_call_terminate_timeout_seconds`` (default 40 s) later it aborts the
process (``Termination timeout for `all reduce RendezvousKey{...}` ... exceeded``). On the
2 shared cores of the development machine at load 12-18 the 8-device sharded OT script gets
~10 % of a core (42 s CPU in 250-470 s wall) and it aborted with that timeout in 2 of 4
clean-clone runs. The timeout is a watchdog for deadlocks, not a property of the code under
test, so the subprocesses wait 2 minutes before the warning and 15 more before the abort; a
real deadlock still fails the test, with XLA's report of the stuck collective in the
subprocess' stderr. Both flags exist in jaxlib 0.10.2 (an unknown XLA_FLAGS entry aborts at
start-up), and they are the ones that act: a program whose device 0 sleeps before a ``psum``
aborts 1 + 3 s into the wait with warn 1 / terminate 3, and a 50 s sleep passes with the
defaults (the abort would come at 20 + 40 s).
"""

from __future__ import annotations

import os
from pathlib import Path

COLLECTIVE_TIMEOUT_FLAGS = ("--xla_cpu_collective_call_warn_stuck_timeout_seconds=120",
                            "--xla_cpu_collective_call_terminate_timeout_seconds=900")
# the subprocess' own limit: longer than the slowest run seen under load (470 s) and than
# XLA's abort (120 + 900 s), which then reports the stuck collective itself
SUBPROCESS_TIMEOUT = 1500


def xla_flags(devices: int, flags: str = "") -> str:
    """``flags`` with ``devices`` simulated CPU devices and the collective timeouts."""
    extra = [f"--xla_force_host_platform_device_count={devices}",
             *COLLECTIVE_TIMEOUT_FLAGS]
    return " ".join([flags, *(f for f in extra if f.split("=")[0] not in flags)]).strip()


def subprocess_env(root: Path, devices: int) -> dict[str, str]:
    """This process' environment for a script that needs ``devices`` CPU devices."""
    env = dict(os.environ)
    env["XLA_FLAGS"] = xla_flags(devices, env.get("XLA_FLAGS", ""))
    env["JAX_PLATFORMS"] = "cpu"
    env["PYTHONPATH"] = os.pathsep.join([str(root), env.get("PYTHONPATH", "")]).rstrip(
        os.pathsep)
    return env
