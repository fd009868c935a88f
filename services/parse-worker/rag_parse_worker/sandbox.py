"""What the extraction child may see and use: an environment without secrets, hard resource caps.

The child parses untrusted bytes with C code (PDFium). If a hostile file takes it over,
it must find nothing worth stealing and be unable to outgrow its budget:

- environment: built from an allow-list (`CHILD_ENV_NAMES` plus a few fixed Python
  switches), never by removing names from the worker's environment: a secret added to
  the worker tomorrow (a new *_URL, *_KEY, *_TOKEN) is not passed on by default;
- the worker makes itself non-dumpable (`protect_worker`), so that a process of the same
  user, such as the child, can read neither /proc/<worker>/environ nor its memory;
- resource limits, set by the child before it reads any input: address space
  (PARSE_MEMORY_LIMIT_MB), CPU seconds per document (derived from PARSE_TIMEOUT_SECONDS:
  a safety net beside the worker's wall-clock kill) under a lifetime cap, no core
  dumps, no file writes, few open files, no new processes or threads.

What this does not do (see docs/parse-worker.md): it is no filesystem or network
isolation; the child can still read what the worker's user can read and open sockets.
Run the worker as an unprivileged user (the Kubernetes manifests do) in its container.
"""

from __future__ import annotations

import contextlib
import ctypes
import math
import os
import resource
from collections.abc import Mapping

# Not secrets, and all extraction needs: where programs are, and the locale.
CHILD_ENV_NAMES = ("PATH", "LANG", "LC_ALL", "LC_CTYPE", "PYTHONPATH")
CHILD_ENV_FIXED = {
    "PYTHONDONTWRITEBYTECODE": "1",  # it may not write files (RLIMIT_FSIZE 0)
    "PYTHONNOUSERSITE": "1",
    "PYTHONUNBUFFERED": "1",
}
MAX_OPEN_FILES = 64  # the protocol's pipes, stderr, and the modules a lazy import opens
CPU_LIFETIME_DOCUMENTS = 20  # a child's lifetime CPU cap, in per-document budgets

_PR_SET_DUMPABLE = 4


def child_environment(parent: Mapping[str, str]) -> dict[str, str]:
    """The child's whole environment: the allow-listed names that are set, and fixed switches."""
    env = {name: parent[name] for name in CHILD_ENV_NAMES if name in parent}
    env.update(CHILD_ENV_FIXED)
    return env


def cpu_budget_seconds(timeout: float) -> int:
    """CPU seconds one document may use: never before the wall-clock timeout stops it."""
    return math.ceil(timeout) + 1


def cpu_lifetime_seconds(budget: int) -> int:
    """The hard RLIMIT_CPU of a child; the pool retires a child before it gets there."""
    return budget * CPU_LIFETIME_DOCUMENTS


def protect_worker() -> None:
    """Make this process non-dumpable: /proc/<pid>/environ and mem become unreadable by
    other processes of the same user (an unprivileged user; root bypasses it), and no
    core dump of the worker (with its credentials) is ever written."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_DUMPABLE, 0, 0, 0, 0)


def _set(limit: int, soft: int, hard: int | None = None) -> None:
    """Lower a limit (never raise it above what it already is)."""
    _, current_hard = resource.getrlimit(limit)
    hard = soft if hard is None else hard
    if current_hard != resource.RLIM_INFINITY:
        hard = min(hard, current_hard)
    resource.setrlimit(limit, (min(soft, hard), hard))


def cpu_used_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def apply_child_limits(memory_limit_mb: int, cpu_budget: int, cpu_lifetime: int | None = None) -> None:
    """Called by the child before it reads its first message. Raises OSError/ValueError
    if a limit cannot be set: a child that cannot confine itself must not start."""
    _set(resource.RLIMIT_CORE, 0)
    _set(resource.RLIMIT_FSIZE, 0)
    _set(resource.RLIMIT_NOFILE, MAX_OPEN_FILES)
    # Counted per user: 0 forbids every fork and thread (the watchdog thread already
    # runs). Root and CAP_SYS_RESOURCE ignore it.
    _set(resource.RLIMIT_NPROC, 0)
    if memory_limit_mb > 0:
        _set(resource.RLIMIT_AS, memory_limit_mb * 1024 * 1024)
    lifetime = cpu_lifetime or cpu_lifetime_seconds(cpu_budget)
    _set(resource.RLIMIT_CPU, math.ceil(cpu_used_seconds()) + cpu_budget, lifetime)


def renew_cpu_budget(cpu_budget: int) -> None:
    """Before each document: this document's budget on top of what the child used so far
    (SIGXCPU past it), under the unchanged lifetime cap (SIGKILL past that)."""
    _, hard = resource.getrlimit(resource.RLIMIT_CPU)
    soft = math.ceil(cpu_used_seconds()) + cpu_budget
    resource.setrlimit(resource.RLIMIT_CPU, (min(soft, hard), hard))


def process_cpu_seconds(pid: int) -> float:
    """utime + stime of another process (/proc/<pid>/stat); 0.0 if it cannot be read."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
