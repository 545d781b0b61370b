"""Paths in a chain are relative to the workspace; nothing may resolve outside it."""

from __future__ import annotations

from pathlib import Path

from taskchain.errors import InvalidInput


class PathEscape(InvalidInput):
    def __init__(self, path: str, workspace: Path) -> None:
        super().__init__(f"path {path!r} resolves outside the workspace {workspace}")
        self.path = path


def confine(workspace: Path, path: str | Path) -> Path:
    """The absolute, symlink-resolved path of `path` inside `workspace`, or PathEscape.

    Relative paths are taken from the workspace; an absolute path is accepted only when it
    lies inside. Symlinks are followed (also in missing paths' existing parents), so a link
    pointing out is refused like `..`.
    """
    text = str(path)
    if not text.strip() or "\x00" in text:
        raise InvalidInput(f"path {text!r} is empty or invalid")
    root = workspace.resolve()
    candidate = Path(text).expanduser()
    resolved = (candidate if candidate.is_absolute() else root / candidate).resolve()
    if resolved != root and not resolved.is_relative_to(root):
        raise PathEscape(text, root)
    return resolved
