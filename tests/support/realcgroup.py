"""Real memory-cgroup harness for integration tests (cgroup v1 and v2).

``RealCgroup`` creates a fresh, uniquely named memory cgroup with a hard limit, starts
children inside it (the child joins the cgroup *before* it execs the target program, via a
tiny ``/bin/sh`` wrapper, so no ``preexec_fn`` is needed), reports whether the kernel
OOM-killed them, and removes the cgroup again on exit (SIGKILL every member, wait for
``cgroup.procs`` to drain, ``rmdir`` with retries while the kernel still says EBUSY).

Where the cgroups are created:

* ``$OOMGUARD_TEST_CGROUP_PARENT`` when set (a cgroup directory; v2 when it has a
  ``cgroup.controllers`` file, otherwise v1).
* cgroup v1 (the memory controller is mounted on a v1 hierarchy): directly under the
  root of that hierarchy (``/sys/fs/cgroup/memory``), deliberately *not* inside the cgroup
  the test runner was placed in (that one belongs to whoever started us). v1's
  ``memory.oom_control`` ``oom_kill`` counter is local to the cgroup (unlike v2's
  hierarchical ``memory.events``), so either placement would count only our own kills.
* cgroup v2: under the hierarchy root when ``memory`` is enabled in its
  ``cgroup.subtree_control``; otherwise under the nearest ancestor of the current
  process's cgroup that has it enabled (a sibling of our own cgroup: our own cgroup holds
  processes, so the "no internal processes" rule forbids enabling controllers in it);
  otherwise ``+memory`` is written to the root's ``cgroup.subtree_control`` (always allowed
  on the real root; EBUSY on a namespaced root that holds processes, in which case the
  harness reports itself unavailable and says why).

Names are ``<prefix>-<pid>-<random>`` so parallel pytest-xdist workers never collide;
cgroups left behind by a dead test process (same prefix, pid no longer alive) are swept
best-effort when a new one is created.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import os
import re
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

__all__ = [
    "JOIN_FAILED_RC",
    "PARENT_ENV",
    "Outcome",
    "RealCgroup",
    "require",
    "unavailable_reason",
]

PARENT_ENV = "OOMGUARD_TEST_CGROUP_PARENT"
"""Environment variable naming an explicit parent cgroup directory."""

JOIN_FAILED_RC = 125
"""Exit status of the wrapper when it could not write itself into ``cgroup.procs``."""

# If the redirect fails, sh itself prints why ("cannot create ...") on stderr.
_WRAPPER = 'echo $$ > "$0" || exit 125; exec "$@"'
_MOUNTINFO = Path("/proc/self/mountinfo")
_PROC_CGROUP = Path("/proc/self/cgroup")
_KILL_TIMEOUT = 10.0
_RMDIR_TIMEOUT = 10.0
_PROBE_LIMIT = 64 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Outcome:
    """What happened to a child started in a :class:`RealCgroup`."""

    returncode: int | None
    """``Popen.returncode`` (negative = killed by that signal)."""
    oom_killed: bool
    """The cgroup's ``oom_kill`` counter rose while the child ran *and* it died by SIGKILL."""
    oom_kills: int
    """How much the cgroup's ``oom_kill`` counter rose while the child ran."""
    timed_out: bool
    stdout: str
    stderr: str


@dataclass(frozen=True, slots=True)
class _Location:
    version: int
    parent: Path


@dataclass(frozen=True, slots=True)
class _Mount:
    fstype: str
    root: str
    mountpoint: Path
    super_options: frozenset[str]


def _unescape(field: str) -> str:
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def _mounts() -> list[_Mount]:
    mounts: list[_Mount] = []
    for line in _MOUNTINFO.read_text().splitlines():
        left, sep, right = line.partition(" - ")
        if not sep:
            continue
        lfields, rfields = left.split(), right.split()
        if len(lfields) < 5 or len(rfields) < 3:
            continue
        mounts.append(
            _Mount(
                fstype=rfields[0],
                root=_unescape(lfields[3]),
                mountpoint=Path(_unescape(lfields[4])),
                super_options=frozenset(rfields[2].split(",")),
            )
        )
    return mounts


def _words(path: Path) -> set[str]:
    try:
        return set(path.read_text().split())
    except OSError:
        return set()


def _write(path: Path, value: str) -> None:
    # One write() per value: cgroupfs parses each write separately.
    with path.open("w") as f:
        f.write(value)


def _own_v2_dir(mount: _Mount) -> Path | None:
    """Directory of this process's cgroup inside the given cgroup2 mount, if visible."""
    try:
        lines = _PROC_CGROUP.read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        hid, _, rest = line.partition(":")
        controllers, _, cgpath = rest.partition(":")
        if hid != "0" or controllers:
            continue
        root = mount.root.rstrip("/")
        if cgpath != root and not cgpath.startswith(root + "/"):
            return None  # our cgroup is outside this mount (e.g. "/.." in a namespace)
        rel = cgpath[len(root) :].strip("/")
        return mount.mountpoint / rel if rel else mount.mountpoint
    return None


def _locate_v2(mount: _Mount) -> _Location | str:
    root = mount.mountpoint
    if "memory" in _words(root / "cgroup.subtree_control"):
        return _Location(2, root)
    own = _own_v2_dir(mount)
    if own is not None and own != root:
        for ancestor in own.parents:
            if "memory" in _words(ancestor / "cgroup.subtree_control"):
                return _Location(2, ancestor)
            if ancestor == root:
                break
    try:
        _write(root / "cgroup.subtree_control", "+memory")
    except OSError as exc:
        hint = ""
        if exc.errno == errno.EBUSY:
            hint = (
                " (cgroup v2 'no internal processes' rule: processes live in that cgroup;"
                " move them into a leaf cgroup or set "
                f"{PARENT_ENV} to a cgroup with +memory in its subtree_control)"
            )
        return f"cannot enable +memory in {root}/cgroup.subtree_control: {exc}{hint}"
    return _Location(2, root)


@functools.cache
def _locate() -> _Location | str:
    """Where to create test cgroups, or a human-readable reason why we cannot."""
    override = os.environ.get(PARENT_ENV)
    if override:
        parent = Path(override)
        if not parent.is_dir():
            return f"{PARENT_ENV}={override} is not a directory"
        return _Location(2 if (parent / "cgroup.controllers").exists() else 1, parent)
    try:
        mounts = _mounts()
    except OSError as exc:
        return f"cannot read {_MOUNTINFO}: {exc}"
    for mount in mounts:
        if mount.fstype == "cgroup" and "memory" in mount.super_options:
            return _Location(1, mount.mountpoint)
    for mount in mounts:
        if mount.fstype == "cgroup2" and "memory" in _words(mount.mountpoint / "cgroup.controllers"):
            return _locate_v2(mount)
    return (
        "no memory cgroup controller: no cgroup v1 hierarchy with 'memory' and no cgroup2 "
        "mount listing 'memory' in cgroup.controllers"
    )


@functools.cache
def unavailable_reason() -> str | None:
    """None when this machine can create memory-limited cgroups; else a human reason.

    Requires Linux, euid 0 and a writable memory controller; the last is checked by
    actually creating (and removing) a small limited cgroup once per process.
    """
    if not sys.platform.startswith("linux"):
        return f"real cgroups need Linux (this is {sys.platform})"
    if os.geteuid() != 0:
        return f"real cgroups need root (euid is {os.geteuid()})"
    location = _locate()
    if isinstance(location, str):
        return location
    try:
        with RealCgroup(_PROBE_LIMIT, prefix="oomguard-probe"):
            pass
    except (OSError, RuntimeError) as exc:
        return f"cannot create a memory-limited cgroup under {location.parent}: {exc}"
    return None


def require() -> None:
    """``pytest.skip`` the calling test when real memory cgroups are unavailable."""
    reason = unavailable_reason()
    if reason is not None:
        pytest.skip(f"real memory cgroup unavailable: {reason}")


def _read_procs(path: Path) -> list[int]:
    try:
        text = (path / "cgroup.procs").read_text()
    except FileNotFoundError:
        return []
    except OSError as exc:
        if exc.errno == errno.ENODEV:  # cgroup being torn down
            return []
        raise
    return [int(tok) for tok in text.split()]


def _kill_members(path: Path, version: int, timeout: float) -> None:
    """SIGKILL everything in the cgroup at ``path`` until ``cgroup.procs`` is empty."""
    kill_file = path / "cgroup.kill"
    if version == 2 and kill_file.exists():
        with contextlib.suppress(OSError):
            _write(kill_file, "1")
    deadline = time.monotonic() + timeout
    while True:
        pids = _read_procs(path)
        if not pids:
            return
        if os.getpid() in pids:
            raise RuntimeError(f"refusing to SIGKILL the test process itself ({path})")
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if time.monotonic() > deadline:
            raise RuntimeError(f"pids {pids} still in {path} {timeout:.0f}s after SIGKILL")
        time.sleep(0.01)


def _try_rmdir(path: Path) -> int:
    """rmdir ``path``; 0 on success or when already gone, else the errno."""
    try:
        path.rmdir()
    except FileNotFoundError:
        return 0
    except OSError as exc:
        return exc.errno or errno.EIO
    return 0


def _rmdir(path: Path, version: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while (err := _try_rmdir(path)) != 0:
        if err != errno.EBUSY or time.monotonic() > deadline:
            raise OSError(err, os.strerror(err), str(path))
        # Something may have slipped in (a fork racing our kill); kill again.
        with contextlib.suppress(RuntimeError):
            _kill_members(path, version, timeout=1.0)
        time.sleep(0.05)


def _sweep_stale(parent: Path, prefix: str, version: int) -> None:
    """Best-effort removal of ``<prefix>-<pid>-*`` cgroups whose creating pid is dead."""
    try:
        entries = list(parent.iterdir())
    except OSError:
        return
    for entry in entries:
        name = entry.name
        if not name.startswith(prefix + "-"):
            continue
        owner = name[len(prefix) + 1 :].split("-", 1)[0]
        if not owner.isdigit():
            continue
        try:
            os.kill(int(owner), 0)
        except ProcessLookupError:
            pass  # owner is gone: stale
        except PermissionError:
            continue  # alive (owned by someone else)
        else:
            continue  # alive
        with contextlib.suppress(OSError, RuntimeError):
            _kill_members(entry, version, timeout=2.0)
            _rmdir(entry, version, timeout=2.0)


class RealCgroup:
    """A fresh memory cgroup with a limit.

    Context manager: the cgroup is created by ``__enter__`` and removed by ``__exit__``
    (leftover processes are SIGKILLed first, and every child started with :meth:`popen`
    is reaped and has its pipes closed).
    """

    version: int
    """1 or 2."""
    path: Path
    """The cgroup directory (exists only inside the ``with`` block)."""
    limit_bytes: int
    name: str

    def __init__(self, limit_bytes: int, *, prefix: str = "oomguard-test") -> None:
        if limit_bytes <= 0:
            raise ValueError(f"limit_bytes must be positive, got {limit_bytes}")
        if not prefix or "/" in prefix:
            raise ValueError(f"bad cgroup name prefix {prefix!r}")
        location = _locate()
        if isinstance(location, str):
            raise RuntimeError(f"real memory cgroup unavailable: {location}")
        self.version = location.version
        self.limit_bytes = limit_bytes
        self._prefix = prefix
        self.name = f"{prefix}-{os.getpid()}-{secrets.token_hex(4)}"
        self.path = location.parent / self.name
        self._procs: list[subprocess.Popen[str]] = []
        self._oom_baseline: dict[int, int] = {}
        self._active = False

    def __repr__(self) -> str:
        return f"RealCgroup(v{self.version}, {self.path}, limit={self.limit_bytes})"

    # -- lifecycle ---------------------------------------------------------------------

    def __enter__(self) -> RealCgroup:
        if self._active:
            raise RuntimeError(f"{self!r} is already active")
        _sweep_stale(self.path.parent, self._prefix, self.version)
        self.path.mkdir()
        try:
            self._configure()
        except BaseException:
            self._remove()
            raise
        self._active = True
        return self

    def __exit__(self, *exc: object) -> None:
        self._active = False
        self._remove()

    def _configure(self) -> None:
        limit = str(self.limit_bytes)
        if self.version == 1:
            _write(self.path / "memory.limit_in_bytes", limit)
            # oom_kill_disable is inherited from the parent on v1: force the killer on.
            _write(self.path / "memory.oom_control", "0")
            control = self._keyed(self.path / "memory.oom_control")
            if control.get("oom_kill_disable", 0) != 0:
                raise RuntimeError(f"could not enable the OOM killer in {self.path}")
            # memory.memsw.* is left alone (the limit then applies to RAM only).
        else:
            _write(self.path / "memory.max", limit)
            swap_max = self.path / "memory.swap.max"
            if swap_max.exists():
                # Without this a host with swap would swap instead of OOM-killing.
                _write(swap_max, "0")

    def _remove(self) -> None:
        errors: list[BaseException] = []
        try:
            _kill_members(self.path, self.version, _KILL_TIMEOUT)
        except (OSError, RuntimeError) as exc:
            errors.append(exc)
        for proc in self._procs:
            if proc.poll() is None:  # e.g. never managed to join the cgroup
                proc.kill()
            try:
                proc.wait(timeout=_KILL_TIMEOUT)
            except subprocess.TimeoutExpired as exc:
                errors.append(exc)
            for stream in (proc.stdin, proc.stdout, proc.stderr):
                if stream is not None:
                    stream.close()
        self._procs.clear()
        self._oom_baseline.clear()
        try:
            _rmdir(self.path, self.version, _RMDIR_TIMEOUT)
        except OSError as exc:
            errors.append(exc)
        if errors:
            raise RuntimeError(f"could not clean up cgroup {self.path}: {errors!r}")

    # -- processes ---------------------------------------------------------------------

    def popen(
        self,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        stdout: int = subprocess.PIPE,
        stderr: int = subprocess.PIPE,
        stdin: int = subprocess.DEVNULL,
    ) -> subprocess.Popen[str]:
        """Start ``argv`` with the child already inside the cgroup before it execs.

        The child is ``/bin/sh -c 'echo $$ > <cgroup>/cgroup.procs && exec "$@"'``, so the
        pid of the returned ``Popen`` is the target program's pid. If joining fails the
        wrapper exits with :data:`JOIN_FAILED_RC`. Text mode, UTF-8 with replacement.
        Returns once the child is listed in ``cgroup.procs`` (or has already exited).
        """
        if not self._active:
            raise RuntimeError(f"{self!r} is not active (use it as a context manager)")
        if isinstance(argv, str) or not argv:
            raise ValueError("argv must be a non-empty sequence of strings")
        baseline = self.oom_kill_count()
        proc = subprocess.Popen(
            ["/bin/sh", "-c", _WRAPPER, str(self.path / "cgroup.procs"), *argv],
            stdin=stdin,
            stdout=stdout,
            stderr=stderr,
            env=dict(env) if env is not None else None,
            cwd=cwd,
            encoding="utf-8",
            errors="replace",
        )
        self._procs.append(proc)
        self._oom_baseline[proc.pid] = baseline
        # Return only once the child is a member, so callers may inspect it at once.
        deadline = time.monotonic() + 10
        while proc.pid not in self.pids() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.002)
        return proc

    def run(
        self,
        argv: Sequence[str],
        *,
        timeout: float,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> Outcome:
        """:meth:`popen` + :meth:`wait`."""
        return self.wait(self.popen(argv, env=env, cwd=cwd), timeout=timeout)

    def wait(self, proc: subprocess.Popen[str], *, timeout: float) -> Outcome:
        """Wait for ``proc`` (collecting its output); on timeout SIGKILL the whole cgroup.

        ``oom_kills`` counts every OOM kill in the cgroup since ``proc`` was started, so with
        several concurrent children it cannot tell whose sibling was the victim;
        ``oom_killed`` additionally requires ``proc`` itself to have died by SIGKILL.
        """
        baseline = self._oom_baseline.pop(proc.pid, 0)
        timed_out = False
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
            # Kill the whole cgroup: descendants may hold the pipes open.
            with contextlib.suppress(OSError, RuntimeError):
                _kill_members(self.path, self.version, _KILL_TIMEOUT)
            proc.kill()
            out, err = proc.communicate()
        with contextlib.suppress(ValueError):
            self._procs.remove(proc)
        # The kernel bumps oom_kill *before* it sends SIGKILL, so once the child is
        # reaped the counter is final.
        kills = self.oom_kill_count() - baseline
        return Outcome(
            returncode=proc.returncode,
            oom_killed=kills > 0 and proc.returncode == -signal.SIGKILL,
            oom_kills=kills,
            timed_out=timed_out,
            stdout=out or "",
            stderr=err or "",
        )

    # -- counters ----------------------------------------------------------------------

    @staticmethod
    def _keyed(path: Path) -> dict[str, int]:
        values: dict[str, int] = {}
        for line in path.read_text().splitlines():
            key, _, value = line.partition(" ")
            with contextlib.suppress(ValueError):
                values[key] = int(value)
        return values

    def oom_kill_count(self) -> int:
        """v1: ``oom_kill`` in memory.oom_control; v2: ``oom_kill`` in memory.events."""
        source = self.path / ("memory.oom_control" if self.version == 1 else "memory.events")
        values = self._keyed(source)
        if "oom_kill" not in values:
            raise RuntimeError(f"{source} has no oom_kill counter (kernel too old?)")
        return values["oom_kill"]

    def usage_bytes(self) -> int:
        """v1: memory.usage_in_bytes; v2: memory.current."""
        name = "memory.usage_in_bytes" if self.version == 1 else "memory.current"
        return int((self.path / name).read_text())

    def pids(self) -> list[int]:
        """Process ids in ``cgroup.procs`` (empty once the cgroup is gone)."""
        return _read_procs(self.path)
