"""Output folders that several processes may point at: an exclusive lock on a folder one command writes, and a
claim on each run of a sweep folder that several share.

Both are ``flock`` locks (the ``filelock`` package): the operating system releases them when their process
ends, however it ends, so a crashed process leaves nothing to clean up and its runs are taken over. (On network
file systems ``flock`` may not be shared between machines.)
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from filelock import FileLock, Timeout

from mhc_mup.errors import FolderBusyError

__all__ = ["FOLDER_LOCK", "claim", "exclusive_folder", "one_at_a_time"]

FOLDER_LOCK = ".mhc-mup.lock"  # in the output folder; its holder is described in FOLDER_LOCK + ".json"


@contextlib.contextmanager
def exclusive_folder(folder: Path, create: bool = True) -> Iterator[None]:
    """Hold ``folder``'s lock while the block runs (creating the folder, unless ``create`` is false: then a missing
    folder is left to the block to report); :class:`FolderBusyError` naming the holder when another process holds
    it. The lock's files are removed when the block ends, and a folder this call created is removed again if the
    block failed before writing anything into it."""
    folder = Path(folder)
    if not create and not folder.is_dir():
        yield
        return
    created = not folder.exists()
    folder.mkdir(parents=True, exist_ok=True)
    lock_path, holder = folder / FOLDER_LOCK, folder / (FOLDER_LOCK + ".json")
    lock = FileLock(lock_path, timeout=0)
    try:
        lock.acquire()
    except Timeout:
        who = _describe(holder)
        raise FolderBusyError(f"'{folder}' is being written by {who}; wait for it or use another --out") from None
    try:
        holder.write_text(json.dumps(_me()) + "\n", encoding="utf-8")
        yield
    finally:
        # removed before the release: a process that opened the old file fails to lock it and is refused
        holder.unlink(missing_ok=True)
        lock_path.unlink(missing_ok=True)
        lock.release()
        if created and not any(folder.iterdir()):
            folder.rmdir()


@contextlib.contextmanager
def claim(path: Path) -> Iterator[bool]:
    """Try to claim the work whose result goes to ``path``: yields ``True`` holding the claim (the lock file is
    removed when done), ``False`` when another process holds it. Never waits."""
    lock_path = Path(f"{path}.claim")
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(lock_path, timeout=0)
    try:
        lock.acquire()
    except Timeout:
        yield False
        return
    try:
        yield True
    finally:
        lock_path.unlink(missing_ok=True)  # safe: a process that opened the old file fails to lock it and moves on
        lock.release()


@contextlib.contextmanager
def one_at_a_time(path: Path, timeout: float = 60.0) -> Iterator[None]:
    """Wait (up to ``timeout`` seconds) until no other process is in a block guarded by ``path`` (a lock file),
    then run this one: for a short read-modify-write of a shared file."""
    try:
        with FileLock(path, timeout=timeout):
            yield
    except Timeout:
        raise FolderBusyError(f"'{path}' stayed locked for {timeout:g} s by another process") from None


def _me() -> dict:
    return {"pid": os.getpid(), "host": socket.gethostname(), "since": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "command": " ".join(sys.argv)}  # fmt: skip


def _describe(holder: Path) -> str:
    try:
        info = json.loads(holder.read_text(encoding="utf-8"))
        return f"process {info['pid']} on {info['host']} since {info['since']} (`{info['command']}`)"
    except (OSError, ValueError, KeyError, TypeError):
        return "another process"
