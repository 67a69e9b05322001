"""One run per directory: the lock a run holds for its lifetime, and which outputs it finds.

* :class:`RunLock`: an exclusive ``fcntl.flock`` on ``DIR/.lock``, which holds the owner's pid.
  A second run on the directory fails at once naming that pid. The kernel drops the lock when
  its process dies, however it dies, so a ``.lock`` left by a killed run is stale: the next run
  takes it over with a warning naming the dead pid.
* :func:`run_outputs` / :func:`clear_outputs`: the files of :data:`sslrec.io.OUTPUTS` a
  directory holds; a fresh run refuses a directory holding any (``trainer.overwrite=true``
  clears them first), see ``sslrec.run``.

``flock`` works on local file systems and on NFSv4 (Linux maps it to a POSIX lock there).
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
from pathlib import Path

from sslrec.io import OUTPUTS

log = logging.getLogger("sslrec")

LOCK = ".lock"


class RunDirError(RuntimeError):
    """The run directory cannot be used by this run (another run holds it or wrote it); the
    directory was left exactly as it was."""


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by another user
        return True
    return True


class RunLock:
    """``with RunLock(run_dir):`` holds ``run_dir/.lock`` (exclusive, non-blocking).

    Raises:
        RunDirError: another live process holds the lock (the message names its pid).
    """

    def __init__(self, run_dir: str | Path) -> None:
        self.path = Path(run_dir) / LOCK
        self.fd: int | None = None

    def acquire(self) -> None:
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                os.close(fd)
                if exc.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                    raise
                raise RunDirError(
                    f"{self.path.parent} is in use by another run (pid {self._holder()}, "
                    f"{self.path}); wait for it to end or choose another hydra.run.dir"
                ) from None
            # a releasing owner unlinks the file: if ours is no longer the one at the path,
            # another run may lock the new file too, so start over on the new one
            try:
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        previous = os.read(fd, 64).decode(errors="replace").strip()
        if previous.isdigit() and int(previous) != os.getpid():
            state = "no longer running" if not _pid_alive(int(previous)) else "not holding it"
            log.warning(
                "stale lock %s of pid %s (%s) taken over: that run ended without releasing it",
                self.path,
                previous,
                state,
            )
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self.fd = fd

    def _holder(self) -> str:
        try:
            return self.path.read_text().strip() or "unknown"
        except OSError:
            return "unknown"

    def release(self) -> None:
        if self.fd is None:
            return
        try:
            self.path.unlink(missing_ok=True)  # while still locked: see acquire
        finally:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def run_outputs(run_dir: str | Path) -> list[str]:
    """The names of :data:`sslrec.io.OUTPUTS` present in ``run_dir``."""
    return [name for name in OUTPUTS if (Path(run_dir) / name).exists()]


def clear_outputs(run_dir: str | Path) -> list[str]:
    """Delete every :data:`sslrec.io.OUTPUTS` file of ``run_dir`` (``trainer.overwrite=true``);
    returns their names."""
    removed = run_outputs(run_dir)
    for name in removed:
        (Path(run_dir) / name).unlink()
    return removed
