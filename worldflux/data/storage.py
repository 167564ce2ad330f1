"""Crash-safe file writing for datasets: atomic replace, temporary-file cleanup and a lock.

A file is written under a temporary name in its final folder, flushed to disk, renamed over the
final name (atomic on POSIX and Windows) and the folder entry is flushed too, so a kill at any
point leaves either the old content or the new one, plus at most a temporary file. Temporary
files end in :data:`TMP_SUFFIX`; :func:`remove_temp_files` deletes them, and only runs while
holding the dataset's :class:`DatasetLock` so that it never deletes the file a live writer is
filling.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import Any

from worldflux.errors import ConfigError

try:  # POSIX advisory locks; elsewhere datasets are written without one
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

TMP_SUFFIX = ".tmp"
LOCK_FILE = ".lock"


def file_mode() -> int:
    """The permission bits a plain ``open()`` would give a new file (``0o666`` less the umask)."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def fsync_dir(folder: Path) -> None:
    """Flush a folder's entries (a rename) to disk, where the platform allows it."""
    with contextlib.suppress(OSError):  # not supported on some filesystems and on Windows
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def atomic_write(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` so that a kill leaves the old or the new content."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}-", suffix=TMP_SUFFIX)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, file_mode())  # mkstemp creates 0600 files
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


@contextlib.contextmanager
def locked_temp_file(folder: Path, prefix: str, suffix: str) -> Iterator[tuple[Any, Path]]:
    """A temporary file in ``folder`` that holds an exclusive lock on itself while it is open.

    The lock tells :func:`remove_orphans` that a live writer owns the file; the kernel drops it
    when the writer dies, so a killed writer's file becomes an orphan that is safe to delete.
    Yields ``(file object, path)``; the file is deleted if the block raises.
    """
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=prefix, suffix=suffix)
    try:
        with os.fdopen(fd, "wb") as fh:
            if fcntl is not None:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
            yield fh, Path(tmp)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def remove_orphans(folder: Path, pattern: str) -> list[Path]:
    """Delete the files matching ``pattern`` that no live writer holds locked.

    Only for files made by :func:`locked_temp_file`. Without ``fcntl`` (Windows) nothing is
    deleted, as liveness cannot be told. Returns the deleted paths.
    """
    removed: list[Path] = []
    if fcntl is None or not folder.is_dir():
        return removed
    for file in folder.glob(pattern):
        try:
            fd = os.open(file, os.O_RDONLY)
        except OSError:
            continue  # renamed or deleted meanwhile
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            continue  # a live writer
        else:
            file.unlink(missing_ok=True)
            removed.append(file)
        finally:
            os.close(fd)
    return removed


def remove_temp_files(root: Path) -> list[Path]:
    """Delete the temporary files a killed writer left in ``root`` and its ``episodes/`` folder.

    Call it only while holding the dataset's lock. Returns the deleted paths.
    """
    removed = []
    for folder in (root, root / "episodes"):
        if not folder.is_dir():
            continue
        for file in folder.iterdir():
            # ``.tmp.npz``: the temporary names of datasets written by earlier versions
            if file.name.endswith((TMP_SUFFIX, ".tmp.npz")) and file.is_file():
                file.unlink(missing_ok=True)
                removed.append(file)
    return removed


class DatasetLock:
    """An exclusive advisory lock on a dataset directory (``<path>/.lock``).

    A collect run holds it for its whole life; a reader takes it without waiting only to delete
    temporary files. The kernel drops it when the holder dies, so a killed run never leaves a
    stale lock.

    Args:
        path: the dataset directory (created if missing).
        blocking: wait up to ``timeout`` seconds for the lock; otherwise ``held`` says whether
            it was free.
        timeout: how long a blocking acquire waits before raising :class:`ConfigError`.
    """

    def __init__(
        self, path: str | os.PathLike[str], blocking: bool = True, timeout: float = 10.0
    ) -> None:
        self.path = Path(path)
        self.blocking, self.timeout = blocking, timeout
        self.held = False
        self._fd: int | None = None

    def __enter__(self) -> DatasetLock:
        if fcntl is None or (not self.blocking and not self.path.is_dir()):
            return self
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(self.path / LOCK_FILE, os.O_RDWR | os.O_CREAT, file_mode())
        except OSError as err:
            if not self.blocking:  # a read-only dataset: readable, just never cleaned
                return self
            raise ConfigError(f"cannot write the dataset {self.path}: {err}") from None
        deadline = time.monotonic() + (self.timeout if self.blocking else 0.0)
        while True:
            try:
                fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                self.held = True
                return self
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    break
                time.sleep(0.1)
        os.close(self._fd)
        self._fd = None
        if self.blocking:
            raise ConfigError(
                f"another process (a running collect) is writing the dataset {self.path}; "
                "wait for it or choose another path="
            )
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor releases the flock
            self._fd = None
        self.held = False
