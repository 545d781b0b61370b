"""The file operations of io_chain: each confined to the workspace and safe to run twice.

A path is looked at twice: its *entry* (the name in its directory, last component not
followed; what `move` and `delete` act on, like mv and rm) and its *real* path (every symlink
followed; what read, checksum, stat, list, write and copy act on, like cat and cp). Both
must lie inside the workspace. Failures are `StepError`s; escapes are `InvalidInput`s, which
the chain type reports as exit 2 at submit and as a failed step at run time.
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat
import uuid
from collections.abc import Iterable, Iterator
from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

from taskchain.errors import InvalidInput, StepError
from taskchain.timeparse import iso
from taskchain.workspace import confine

#: The chain-internal folder (per-chain files of other chain types); io_chain reads it only.
INTERNAL = ".taskchain"
TEXT_LIMIT = 64 * 1024  # bytes of text a `read` reports per file
STEP_TEXT_LIMIT = 256 * 1024  # ... and per step, over all its files
LIST_LIMIT = 1000  # entries a `list` reports per directory
_CHUNK = 1024 * 1024


@dataclass(frozen=True)
class Place:
    """A workspace path, checked: how it is reported, its entry and its real path."""

    rel: str
    entry: Path
    real: Path
    root: Path

    @property
    def internal(self) -> bool:
        return any(
            p != self.root and p.relative_to(self.root).parts[0] == INTERNAL
            for p in (self.entry, self.real)
        )


def locate(workspace: Path, path: str) -> Place:
    """The Place of `path`, or InvalidInput if it (or a symlink on the way) leads outside."""
    root = workspace.resolve()
    real = confine(workspace, path)
    candidate = Path(path).expanduser()
    candidate = candidate if candidate.is_absolute() else root / candidate
    if candidate == root or candidate.name in ("", ".."):
        entry = real
    else:
        entry = confine(workspace, candidate.parent) / candidate.name
    rel = entry.relative_to(root).as_posix()
    return Place(rel=rel or ".", entry=entry, real=real, root=root)


def destination(workspace: Path, place: Place, folder: Place, op: str) -> Place:
    """Where `copy`/`move` puts `place` in `folder`: the folder plus the same name."""
    if place.entry == place.root:
        raise InvalidInput(f"cannot {op} the workspace itself")
    if folder.internal or (place.internal and op == "move"):
        raise InvalidInput(f"{op} {place.rel} → {folder.rel}: {INTERNAL}/ is read-only")
    dest = locate(workspace, str(folder.real / place.entry.name))
    if op == "move" and dest.entry.is_relative_to(place.entry) and dest.entry != place.entry:
        raise InvalidInput(f"cannot move {place.rel} into itself ({dest.rel})")
    return dest


def modifiable(place: Place, op: str) -> None:
    if place.internal:
        raise InvalidInput(f"{op} {place.rel}: {INTERNAL}/ is read-only for io_chain")
    if place.entry == place.root:
        raise InvalidInput(f"cannot {op} the workspace itself")


# -- the operations: each returns what it did to one file, as a small JSON object ---------


def write(place: Place, content: str) -> dict[str, Any]:
    modifiable(place, "write")
    if place.real.is_dir():
        raise StepError(f"write {place.rel}: is a directory")
    existed = place.real.exists()
    place.real.parent.mkdir(parents=True, exist_ok=True)
    size, digest = atomic_write(place.real, [content.encode("utf-8")])
    action = "replaced" if existed else "created"
    return {"path": place.rel, "action": action, "size": size, "sha256": digest}


def read(place: Place, budget: int) -> dict[str, Any]:
    """The text of a file (UTF-8), at most min(TEXT_LIMIT, budget) bytes of it."""
    limit = max(0, min(TEXT_LIMIT, budget))
    with _open_file(place, "read") as file:
        size = os.fstat(file.fileno()).st_size
        sniff = file.read(max(limit, 8192) + 1)
    whole = _decode(sniff, cut=len(sniff) < size)
    if whole is None:
        return {"path": place.rel, "size": size, "binary": True}
    sample = sniff[:limit]
    text = _decode(sample, cut=True) or ""
    truncated = len(text.encode("utf-8")) < size
    return {"path": place.rel, "size": size, "binary": False, "text": text, "truncated": truncated}


def checksum(place: Place) -> dict[str, Any]:
    with _open_file(place, "checksum") as file:
        digest = hashlib.sha256()
        size = 0
        for chunk in iter(lambda: file.read(_CHUNK), b""):
            digest.update(chunk)
            size += len(chunk)
    return {"path": place.rel, "size": size, "sha256": digest.hexdigest()}


def stat_of(place: Place) -> dict[str, Any]:
    try:
        info = os.stat(place.real)
    except FileNotFoundError:
        raise StepError(f"stat {place.rel}: does not exist") from None
    return {
        "path": place.rel,
        "type": _kind(info.st_mode),
        "size": info.st_size,
        "mtime": iso(datetime.fromtimestamp(info.st_mtime, UTC)),
        "mode": f"{stat.S_IMODE(info.st_mode):04o}",
        "permissions": stat.filemode(info.st_mode),
        "symlink": place.entry.is_symlink(),
    }


def listing(place: Place) -> dict[str, Any]:
    if not place.real.exists():
        raise StepError(f"list {place.rel}: does not exist")
    if not place.real.is_dir():
        raise StepError(f"list {place.rel}: not a directory")
    with os.scandir(place.real) as found:
        items = sorted(found, key=lambda item: item.name)
    entries = []
    for item in items[:LIST_LIMIT]:
        info = item.stat(follow_symlinks=False)
        entry: dict[str, Any] = {"name": item.name, "type": _kind(info.st_mode)}
        if stat.S_ISREG(info.st_mode):
            entry["size"] = info.st_size
        entries.append(entry)
    return {
        "path": place.rel,
        "count": len(items),
        "entries": entries,
        "truncated": len(items) > LIST_LIMIT,
    }


def copy(place: Place, dest: Place) -> dict[str, Any]:
    """An atomic copy; the copy of an existing file replaces it whole, never half-written."""
    modifiable(dest, "copy to")
    with _open_file(place, "copy") as source:
        mode = stat.S_IMODE(os.fstat(source.fileno()).st_mode)
        if dest.real.exists() and os.path.samefile(place.real, dest.real):
            size = os.fstat(source.fileno()).st_size
            return {"path": place.rel, "to": dest.rel, "action": "in place", "size": size}
        if dest.real.is_dir():
            raise StepError(f"copy {place.rel} → {dest.rel}: a directory is in the way")
        dest.real.parent.mkdir(parents=True, exist_ok=True)
        size, digest = atomic_write(dest.real, _chunks(source), mode=mode)
    return {"path": place.rel, "to": dest.rel, "action": "copied", "size": size, "sha256": digest}


def move(workspace: Path, place: Place, dest: Place) -> dict[str, Any]:
    """A rename; when the source is gone and the destination is there, it already happened."""
    modifiable(place, "move")
    modifiable(dest, "move to")
    done = {"path": place.rel, "to": dest.rel}
    if place.entry == dest.entry:
        return {**done, "action": "in place"}
    if not os.path.lexists(place.entry):
        if os.path.lexists(dest.entry):
            return {**done, "action": "already moved"}
        raise StepError(f"move {place.rel}: does not exist (nor does {dest.rel})")
    if place.entry.is_symlink():
        # A relative link means something else in its new folder; it must still point inside.
        link = Path(os.readlink(place.entry))
        try:
            confine(workspace, link if link.is_absolute() else dest.entry.parent / link)
        except InvalidInput:
            raise InvalidInput(
                f"move {place.rel} → {dest.rel}: the moved symlink would point outside the "
                "workspace"
            ) from None
    dest.entry.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.replace(place.entry, dest.entry)
    except OSError as exc:
        if exc.errno != errno.EXDEV or not stat.S_ISREG(os.lstat(place.entry).st_mode):
            raise
        # Another filesystem inside the workspace: an atomic copy, then the source goes.
        copy(place, dest)
        place.entry.unlink()
    _fsync_dir(dest.entry.parent)
    _fsync_dir(place.entry.parent)
    info = os.lstat(dest.entry)
    size = {"size": info.st_size} if stat.S_ISREG(info.st_mode) else {}
    return {**done, "action": "moved", **size}


def delete(place: Place) -> dict[str, Any]:
    """Files, symlinks (the link, not its target) and empty directories; absent is done."""
    modifiable(place, "delete")
    if not os.path.lexists(place.entry):
        return {"path": place.rel, "action": "already absent"}
    info = os.lstat(place.entry)
    if stat.S_ISDIR(info.st_mode):
        try:
            place.entry.rmdir()
        except OSError as exc:
            if exc.errno in (errno.ENOTEMPTY, errno.EEXIST):
                raise StepError(
                    f"delete {place.rel}: directory is not empty (io_chain deletes files "
                    "and empty directories only)"
                ) from None
            raise
        result: dict[str, Any] = {"path": place.rel, "action": "deleted", "type": "directory"}
    else:
        place.entry.unlink(missing_ok=True)
        result = {"path": place.rel, "action": "deleted", "type": _kind(info.st_mode)}
        if stat.S_ISREG(info.st_mode):
            result["size"] = info.st_size
    _fsync_dir(place.entry.parent)
    return result


# -- helpers ----------------------------------------------------------------------------


def atomic_write(target: Path, chunks: Iterable[bytes], *, mode: int = 0o666) -> tuple[int, str]:
    """Write `target` whole or not at all: a temp file beside it, fsync, rename over it.

    A new file gets `mode` less the umask; a replaced file keeps its permission bits.
    Returns the size and sha256 of what was written.
    """
    keep: int | None = None
    with suppress(FileNotFoundError):
        keep = stat.S_IMODE(os.stat(target).st_mode)
    temp = target.with_name(f".{target.name[:120]}.{uuid.uuid4().hex[:12]}.tmp")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    fd = os.open(temp, flags, mode)
    try:
        digest = hashlib.sha256()
        size = 0
        with os.fdopen(fd, "wb") as file:
            for chunk in chunks:
                file.write(chunk)
                digest.update(chunk)
                size += len(chunk)
            file.flush()
            if keep is not None:
                os.fchmod(file.fileno(), keep)
            os.fsync(file.fileno())
        os.replace(temp, target)
    except BaseException:
        with suppress(OSError):
            temp.unlink()
        raise
    _fsync_dir(target.parent)
    return size, digest.hexdigest()


def _open_file(place: Place, op: str) -> BinaryIO:
    if not place.real.exists():
        raise StepError(f"{op} {place.rel}: does not exist")
    if place.real.is_dir():
        raise StepError(f"{op} {place.rel}: is a directory ({op} works on files)")
    # The real path has no symlink left in it; one swapped in since is refused, not followed.
    fd = os.open(place.real, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    return os.fdopen(fd, "rb")


def _chunks(file: BinaryIO) -> Iterator[bytes]:
    yield from iter(lambda: file.read(_CHUNK), b"")


def _decode(data: bytes, *, cut: bool) -> str | None:
    """UTF-8 text, or None for binary; a character cut at the end of a sample is dropped."""
    if b"\x00" in data:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        if cut and exc.start >= len(data) - 3 and exc.end == len(data):
            with suppress(UnicodeDecodeError):
                return data[: exc.start].decode("utf-8")
        return None


def _kind(mode: int) -> str:
    if stat.S_ISLNK(mode):
        return "symlink"
    if stat.S_ISDIR(mode):
        return "directory"
    return "file" if stat.S_ISREG(mode) else "other"


def _fsync_dir(path: Path) -> None:
    """Make a rename durable; some filesystems cannot sync a directory, which is fine."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
