"""io_chain on real files: every operation, every refusal, and steps run twice."""

from __future__ import annotations

import hashlib
import json
import os
import stat
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from taskchain.chains import StepContext, get_type
from taskchain.chains._io_ops import LIST_LIMIT, STEP_TEXT_LIMIT, TEXT_LIMIT
from taskchain.cli.config_input import parse_type_flags
from taskchain.errors import InvalidInput, StepError

IO = get_type("io_chain")


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    root = tmp_path / "ws"
    root.mkdir(exist_ok=True)
    return root


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A folder beside the workspace, with one file in it that must never change."""
    folder = tmp_path / "outside"
    folder.mkdir()
    (folder / "secret.txt").write_text("secret\n")
    return folder


def snapshot(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()
    }


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def cfg(targets: list[Any] | str, *operations: Any) -> dict[str, Any]:
    return {"target_files": targets, "file_operations": list(operations)}


def ctx(ws: Path, index: int = 0, count: int = 1) -> StepContext:
    return StepContext(chain_id="c1", index=index, step_count=count, workspace=ws)


def checked(ws: Path, config: dict) -> Any:
    parsed = IO.parse(config)
    IO.check(parsed, ws)
    return parsed


def run(ws: Path, config: dict) -> list[dict]:
    """Check and run every planned step in order, as the worker would."""
    parsed = checked(ws, config)
    plan = IO.plan(parsed)
    results: list[dict] = []
    previous = None
    for i, step in enumerate(plan):
        previous = IO.run_step(parsed, step, previous, ctx(ws, i, len(plan)))
        assert json.loads(json.dumps(previous)) == previous
        results.append(previous)
    return results


def run_one(ws: Path, config: dict, position: int, previous: Any = None) -> dict:
    parsed = IO.parse(config)
    return IO.run_step(parsed, IO.plan(parsed)[position], previous, ctx(ws, position))


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*.tmp"))


# -- operations ---------------------------------------------------------------------------


def test_write_creates_then_replaces_atomically(ws: Path) -> None:
    config = cfg(["notes/a.txt", "b.txt"], {"op": "write", "content": "héllo\n"})
    (first,) = run(ws, config)
    data = "héllo\n".encode()
    assert (ws / "notes/a.txt").read_bytes() == data and (ws / "b.txt").read_bytes() == data
    assert first == {
        "op": "write",
        "targets": ["notes/a.txt", "b.txt"],
        "files": [
            {"path": "notes/a.txt", "action": "created", "size": len(data), "sha256": sha(data)},
            {"path": "b.txt", "action": "created", "size": len(data), "sha256": sha(data)},
        ],
    }
    os.chmod(ws / "b.txt", 0o600)
    (again,) = run(ws, config)
    assert [f["action"] for f in again["files"]] == ["replaced", "replaced"]
    assert stat.S_IMODE(os.stat(ws / "b.txt").st_mode) == 0o600
    assert (ws / "b.txt").read_bytes() == data
    assert leftovers(ws) == []


def test_write_through_inside_symlink_keeps_the_link(ws: Path) -> None:
    (ws / "real.txt").write_text("old")
    (ws / "link.txt").symlink_to("real.txt")
    run(ws, cfg(["link.txt"], {"op": "write", "content": "new"}))
    assert (ws / "link.txt").is_symlink()
    assert (ws / "real.txt").read_text() == "new"


def test_read_text_binary_and_missing(ws: Path) -> None:
    (ws / "a.txt").write_text("line 1\nliñe 2\n", encoding="utf-8")
    (ws / "b.bin").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00")
    (read,) = run(ws, cfg(["a.txt", "b.bin"], "read"))
    assert read["files"] == [
        {
            "path": "a.txt",
            "size": 15,
            "binary": False,
            "text": "line 1\nliñe 2\n",
            "truncated": False,
        },
        {"path": "b.bin", "size": 10, "binary": True},
    ]
    with pytest.raises(StepError, match=r"^read missing.txt: does not exist$"):
        run(ws, cfg(["missing.txt"], "read"))
    (ws / "folder").mkdir()
    with pytest.raises(StepError, match="read folder: is a directory"):
        run(ws, cfg(["folder"], "read"))


def test_read_is_capped_and_never_splits_a_character(ws: Path) -> None:
    body = "a" * (TEXT_LIMIT - 1) + "é" + "tail"  # the 2-byte é straddles the cap
    (ws / "big.txt").write_text(body, encoding="utf-8")
    (read,) = run(ws, cfg(["big.txt"], "read"))
    (entry,) = read["files"]
    assert entry["truncated"] is True and entry["binary"] is False
    assert entry["size"] == len(body.encode())
    assert entry["text"] == "a" * (TEXT_LIMIT - 1)


def test_read_text_budget_per_step(ws: Path) -> None:
    names = [f"f{i}.txt" for i in range(6)]
    for name in names:
        (ws / name).write_text("x" * TEXT_LIMIT)
    (read,) = run(ws, {"target_files": names, "file_operations": ["read"]})
    lengths = [len(f["text"]) for f in read["files"]]
    assert sum(lengths) == STEP_TEXT_LIMIT
    assert lengths == [TEXT_LIMIT] * 4 + [0, 0]
    assert [f["truncated"] for f in read["files"]] == [False] * 4 + [True, True]


def test_checksum_matches_hashlib(ws: Path) -> None:
    big = os.urandom(3 * 1024 * 1024 + 17)  # several read chunks
    (ws / "big.bin").write_bytes(big)
    (ws / "empty").write_bytes(b"")
    (result,) = run(ws, cfg(["big.bin", "empty"], "checksum"))
    assert result["files"] == [
        {"path": "big.bin", "size": len(big), "sha256": sha(big)},
        {"path": "empty", "size": 0, "sha256": sha(b"")},
    ]


def test_stat_fields(ws: Path) -> None:
    (ws / "a.txt").write_text("12345")
    os.chmod(ws / "a.txt", 0o640)
    os.utime(ws / "a.txt", (0, 1_700_000_000.25))
    (ws / "d").mkdir()
    (ws / "l").symlink_to("a.txt")
    (result,) = run(ws, cfg(["a.txt", "d", "l"], "stat"))
    a, d, link = result["files"]
    assert a == {
        "path": "a.txt", "type": "file", "size": 5, "mtime": "2023-11-14T22:13:20.250Z",
        "mode": "0640", "permissions": "-rw-r-----", "symlink": False,
    }  # fmt: skip
    assert datetime.fromisoformat(a["mtime"]) == datetime.fromtimestamp(1_700_000_000.25, UTC)
    assert d["type"] == "directory" and d["permissions"].startswith("d")
    assert link["symlink"] is True and link["size"] == 5 and link["type"] == "file"


def test_list_directory(ws: Path) -> None:
    (ws / "d" / "sub").mkdir(parents=True)
    (ws / "d" / "b.txt").write_text("bb")
    (ws / "d" / "a.txt").write_text("a")
    (ws / "d" / "l").symlink_to("a.txt")
    (result,) = run(ws, cfg(["d"], "list"))
    assert result["files"] == [
        {
            "path": "d",
            "count": 4,
            "entries": [
                {"name": "a.txt", "type": "file", "size": 1},
                {"name": "b.txt", "type": "file", "size": 2},
                {"name": "l", "type": "symlink"},
                {"name": "sub", "type": "directory"},
            ],
            "truncated": False,
        }
    ]
    with pytest.raises(StepError, match=r"list d/a\.txt: not a directory"):
        run(ws, cfg(["d/a.txt"], "list"))


def test_list_is_capped(ws: Path) -> None:
    (ws / "many").mkdir()
    for i in range(LIST_LIMIT + 5):
        (ws / "many" / f"{i:05d}").touch()
    (result,) = run(ws, cfg(["many"], "list"))
    (entry,) = result["files"]
    assert entry["count"] == LIST_LIMIT + 5 and entry["truncated"] is True
    assert (
        len(entry["entries"]) == LIST_LIMIT
        and entry["entries"][-1]["name"] == f"{LIST_LIMIT - 1:05d}"
    )


def test_copy_changes_targets_for_the_next_step(ws: Path) -> None:
    (ws / "a.txt").write_text("alpha")
    (ws / "sub").mkdir()
    (ws / "sub" / "b.txt").write_text("beta")
    os.chmod(ws / "a.txt", 0o600)
    copied, summed = run(
        ws, cfg(["a.txt", "sub/b.txt"], {"op": "copy", "to": "backup"}, "checksum")
    )
    assert copied["targets"] == ["backup/a.txt", "backup/b.txt"]
    assert copied["files"][0] == {
        "path": "a.txt", "to": "backup/a.txt", "action": "copied", "size": 5, "sha256": sha(b"alpha"),
    }  # fmt: skip
    assert (ws / "backup/a.txt").read_text() == "alpha" and (ws / "a.txt").read_text() == "alpha"
    assert (ws / "backup/b.txt").read_text() == "beta"
    assert stat.S_IMODE(os.stat(ws / "backup/a.txt").st_mode) == 0o600
    assert [f["path"] for f in summed["files"]] == ["backup/a.txt", "backup/b.txt"]
    assert summed["files"][1]["sha256"] == sha(b"beta")
    assert leftovers(ws) == []


def test_copy_twice_overwrites_and_copy_onto_itself_is_in_place(ws: Path) -> None:
    (ws / "a.txt").write_text("v1")
    config = cfg(["a.txt"], {"op": "copy", "to": "bk"})
    run(ws, config)
    (ws / "a.txt").write_text("version 2")
    (again,) = run(ws, config)
    assert again["files"][0]["action"] == "copied"
    assert (ws / "bk/a.txt").read_text() == "version 2"
    (same,) = run(ws, cfg(["a.txt"], {"op": "copy", "to": "."}))
    assert same["files"] == [{"path": "a.txt", "to": "a.txt", "action": "in place", "size": 9}]
    (ws / "d").mkdir()
    with pytest.raises(StepError, match="copy d: is a directory"):
        run(ws, cfg(["d"], {"op": "copy", "to": "bk"}))


def test_move_then_move_again_is_already_moved(ws: Path) -> None:
    (ws / "a.txt").write_text("alpha")
    (ws / "b.txt").write_text("beta")
    config = cfg(["a.txt", "b.txt"], {"op": "move", "to": "archive/2024"}, "read")
    moved, read = run(ws, config)
    assert moved == {
        "op": "move",
        "targets": ["archive/2024/a.txt", "archive/2024/b.txt"],
        "files": [
            {"path": "a.txt", "to": "archive/2024/a.txt", "action": "moved", "size": 5},
            {"path": "b.txt", "to": "archive/2024/b.txt", "action": "moved", "size": 4},
        ],
    }
    assert not (ws / "a.txt").exists() and (ws / "archive/2024/a.txt").read_text() == "alpha"
    assert [f["text"] for f in read["files"]] == ["alpha", "beta"]
    # A worker died after the rename, before recording: the step runs again.
    again = run_one(ws, config, 0)
    assert [f["action"] for f in again["files"]] == ["already moved", "already moved"]
    assert again["targets"] == moved["targets"]
    assert (ws / "archive/2024/b.txt").read_text() == "beta"


def test_move_half_done_finishes_the_rest(ws: Path) -> None:
    (ws / "archive").mkdir()
    (ws / "archive" / "a.txt").write_text("alpha")  # moved by the lost attempt
    (ws / "b.txt").write_text("beta")
    config = cfg(["a.txt", "b.txt"], {"op": "move", "to": "archive"})
    result = run_one(ws, config, 0)
    assert [f["action"] for f in result["files"]] == ["already moved", "moved"]
    with pytest.raises(StepError, match=r"move c.txt: does not exist \(nor does archive/c.txt\)"):
        run_one(ws, cfg(["c.txt"], {"op": "move", "to": "archive"}), 0)


def test_move_symlink_moves_the_link(ws: Path) -> None:
    (ws / "real.txt").write_text("r")
    (ws / "l").symlink_to(ws / "real.txt")
    run(ws, cfg(["l"], {"op": "move", "to": "links"}))
    assert (ws / "links/l").is_symlink() and (ws / "real.txt").read_text() == "r"


def test_move_refuses_a_relative_link_that_would_point_out(ws: Path, outside: Path) -> None:
    (ws / "deep" / "er").mkdir(parents=True)
    (ws / "x.txt").write_text("x")
    (ws / "deep/er/l").symlink_to("../../x.txt")  # inside now; from ws/l it would be ../../x.txt
    parsed = checked(ws, cfg(["deep/er/l"], {"op": "move", "to": "."}))
    with pytest.raises(StepError, match="would point outside the workspace"):
        IO.run_step(parsed, IO.plan(parsed)[0], None, ctx(ws))
    assert (ws / "deep/er/l").is_symlink() and not (ws / "l").exists()


def test_delete_then_delete_again_is_already_absent(ws: Path) -> None:
    (ws / "a.txt").write_text("alpha")
    (ws / "empty").mkdir()
    (ws / "real.txt").write_text("kept")
    (ws / "link").symlink_to("real.txt")
    config = cfg(["a.txt", "empty", "link"], "delete")
    (first,) = run(ws, config)
    assert first["files"] == [
        {"path": "a.txt", "action": "deleted", "type": "file", "size": 5},
        {"path": "empty", "action": "deleted", "type": "directory"},
        {"path": "link", "action": "deleted", "type": "symlink"},
    ]
    assert sorted(p.name for p in ws.iterdir()) == ["real.txt"]
    (again,) = run(ws, config)
    assert [f["action"] for f in again["files"]] == ["already absent"] * 3


def test_delete_refuses_a_non_empty_directory(ws: Path) -> None:
    (ws / "full").mkdir()
    (ws / "full" / "x").write_text("x")
    with pytest.raises(StepError, match="delete full: directory is not empty"):
        run(ws, cfg(["full"], "delete"))
    assert (ws / "full" / "x").exists()


def test_write_after_delete_recreates(ws: Path) -> None:
    (ws / "a.txt").write_text("old")
    results = run(ws, cfg(["a.txt"], "delete", {"op": "write", "content": "new"}, "read"))
    assert [r["op"] for r in results] == ["delete", "write", "read"]
    assert results[2]["files"][0]["text"] == "new"


# -- config, plan and flags ------------------------------------------------------------------


def test_plan_names_and_config_round_trip() -> None:
    raw = {
        "target_files": "a.txt",
        "file_operations": [
            " Read ",
            {"op": "write", "content": "x"},
            {"op": "copy", "to": "backup/"},
            {"op": "move", "to": "arch"},
        ],
    }
    parsed = IO.parse(raw)
    assert [s.name for s in IO.plan(parsed)] == ["read", "write", "copy → backup/", "move → arch/"]
    assert IO.plan(parsed)[2].params == {"position": 2, "op": "copy"}
    dumped = parsed.model_dump(mode="json")
    assert dumped == {
        "target_files": ["a.txt"],
        "file_operations": [
            "read",
            {"op": "write", "content": "x"},
            {"op": "copy", "to": "backup/"},
            {"op": "move", "to": "arch"},
        ],
    }
    assert IO.parse(dumped) == parsed


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (cfg([], "read"), "target_files: List should have at least 1 item"),
        (cfg(["a"]), "file_operations: List should have at least 1 item"),
        (cfg(["a"], "frobnicate"), "file_operations.0: unknown operation 'frobnicate'"),
        (cfg(["a"], "write"), "file_operations.0: write needs 'content'"),
        (cfg(["a"], "read", {"op": "copy"}), "file_operations.1: copy needs 'to'"),
        (cfg(["a"], {"op": "move"}), "move needs 'to'"),
        (cfg(["a"], {"to": "x"}), "needs 'op'"),
        (cfg(["a"], {"op": "read", "to": "x"}), "Extra inputs are not permitted"),
        (cfg(["a"], {"op": "write", "content": 5}), "content"),
        (cfg(["a"], {"op": "copy", "to": ""}), "not a usable path"),
        (cfg([""], "read"), "not a usable path"),
        (cfg([3], "read"), "target_files.0"),
        (cfg(["a"], "delete", "read"), "read follows delete"),
        (
            {"target_files": ["a"], "file_operations": ["read"], "mode": "fast"},
            "mode: Extra inputs",
        ),
        ({"file_operations": ["read"]}, "target_files: Field required"),
    ],
)
def test_invalid_configs(config: dict, message: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        IO.parse(config)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_flags_build_the_config_in_typed_order() -> None:
    args = ["--targets", "a.txt", "b.txt", "--write", "hi, there", "--ops", "read,checksum",
            "--copy", "bk", "--ops", "stat", "list", "--target", "c.txt", "--move", "arch"]  # fmt: skip
    assert parse_type_flags(IO, args) == {
        "target_files": ["a.txt", "b.txt", "c.txt"],
        "file_operations": [
            {"op": "write", "content": "hi, there"}, "read", "checksum", {"op": "copy", "to": "bk"},
            "stat", "list", {"op": "move", "to": "arch"},
        ],
    }  # fmt: skip
    assert parse_type_flags(IO, []) == {}


# -- confinement ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (
            cfg(["../outside/secret.txt"], "read"),
            "target_files.0: path '../outside/secret.txt' resolves outside",
        ),
        (
            cfg(["ok.txt", "/etc/passwd"], "read"),
            "target_files.1: path '/etc/passwd' resolves outside",
        ),
        (cfg(["a/../../x"], "stat"), "resolves outside"),
        (
            cfg(["ok.txt"], {"op": "copy", "to": "../outside"}),
            "file_operations.0 (copy → ../outside/): path '../outside' resolves outside",
        ),
        (cfg(["ok.txt"], "read", {"op": "move", "to": "/tmp"}), "file_operations.1 (move → /tmp/)"),
        (
            cfg([".taskchain/c/out.csv"], {"op": "write", "content": "x"}),
            ".taskchain/ is read-only",
        ),
        (cfg(["ok.txt"], {"op": "copy", "to": ".taskchain"}), ".taskchain/ is read-only"),
        (cfg([".taskchain/x"], {"op": "move", "to": "y"}), ".taskchain/ is read-only"),
        (cfg([".taskchain/x"], "delete"), ".taskchain/ is read-only"),
        (cfg(["."], "delete"), "cannot delete the workspace itself"),
        (cfg(["."], {"op": "copy", "to": "x"}), "cannot copy the workspace itself"),
        (cfg(["d"], {"op": "move", "to": "d/sub"}), "cannot move d into itself"),
        (cfg(["ok.txt", "./ok.txt"], "read"), "target_files.1: './ok.txt' is the same as 'ok.txt'"),
        (
            cfg(["ok.txt", "d/ok.txt"], {"op": "copy", "to": "bk"}),
            "ok.txt and d/ok.txt would both become bk/ok.txt",
        ),
        (cfg(["d/ok.txt"], {"op": "copy", "to": "ok.txt"}), "'ok.txt' is a file, not a folder"),
    ],
)
def test_refused_at_submit(ws: Path, outside: Path, config: dict, message: str) -> None:
    (ws / "ok.txt").write_text("ok")
    (ws / "d").mkdir()
    parsed = IO.parse(config)
    with pytest.raises(InvalidInput) as caught:
        IO.check(parsed, ws)
    assert message in str(caught.value)
    assert str(caught.value).startswith("io_chain: ")


def test_symlinks_pointing_out_are_refused_at_submit(ws: Path, outside: Path) -> None:
    (ws / "leak.txt").symlink_to(outside / "secret.txt")
    (ws / "door").symlink_to(outside)
    for config in (
        cfg(["leak.txt"], "read"),
        cfg(["door/secret.txt"], "read"),
        cfg(["door/new.txt"], {"op": "write", "content": "x"}),
        cfg(["leak.txt"], "delete"),
    ):
        with pytest.raises(InvalidInput, match="resolves outside the workspace"):
            checked(ws, config)
    (ws / "a.txt").write_text("a")
    with pytest.raises(InvalidInput, match=r"file_operations.0 \(copy → door/\).*resolves outside"):
        checked(ws, cfg(["a.txt"], {"op": "copy", "to": "door"}))


def test_absolute_path_inside_is_accepted_and_reported_relative(ws: Path) -> None:
    (ws / "a.txt").write_text("a")
    (result,) = run(ws, cfg([str(ws / "a.txt")], "checksum"))
    assert result["targets"] == ["a.txt"] and result["files"][0]["sha256"] == sha(b"a")


def test_reading_the_internal_folder_is_allowed(ws: Path) -> None:
    (ws / ".taskchain" / "c").mkdir(parents=True)
    (ws / ".taskchain" / "c" / "out.csv").write_text("a,b\n")
    read, _copied = run(ws, cfg([".taskchain/c/out.csv"], "read", {"op": "copy", "to": "results"}))
    assert read["files"][0]["text"] == "a,b\n"
    assert (ws / "results/out.csv").read_text() == "a,b\n"


def test_symlink_created_after_submit_fails_the_step(ws: Path, outside: Path) -> None:
    before = snapshot(outside)
    config = cfg(["a.txt"], {"op": "write", "content": "pwned"})
    parsed = checked(ws, config)  # a.txt does not exist yet: fine at submit
    (ws / "a.txt").symlink_to(outside / "secret.txt")  # ...then someone plants a link
    with pytest.raises(StepError, match=r"path 'a\.txt' resolves outside the workspace"):
        IO.run_step(parsed, IO.plan(parsed)[0], None, ctx(ws))
    assert snapshot(outside) == before


def test_folder_swapped_for_a_link_after_submit_fails_the_copy(ws: Path, outside: Path) -> None:
    (ws / "a.txt").write_text("a")
    (ws / "bk").mkdir()
    parsed = checked(ws, cfg(["a.txt"], {"op": "copy", "to": "bk"}))
    (ws / "bk").rmdir()
    (ws / "bk").symlink_to(outside, target_is_directory=True)
    with pytest.raises(StepError, match="resolves outside"):
        IO.run_step(parsed, IO.plan(parsed)[0], None, ctx(ws))
    assert snapshot(outside) == {"secret.txt": b"secret\n"}


def test_targets_carried_from_the_previous_step_are_confined_again(ws: Path, outside: Path) -> None:
    config = cfg(["a.txt"], "read", {"op": "write", "content": "x"})
    forged = {"op": "read", "targets": ["../outside/secret.txt"], "files": []}
    with pytest.raises(StepError, match="resolves outside"):
        run_one(ws, config, 1, previous=forged)
    with pytest.raises(StepError, match="carries no target list"):
        run_one(ws, config, 1, previous=None)
    assert snapshot(outside) == {"secret.txt": b"secret\n"}


def test_a_link_into_the_internal_folder_is_not_written_through(ws: Path) -> None:
    (ws / ".taskchain").mkdir()
    (ws / ".taskchain" / "state.json").write_text("{}")
    (ws / "alias.json").symlink_to(".taskchain/state.json")
    with pytest.raises(InvalidInput, match=r"write alias\.json: \.taskchain/ is read-only"):
        checked(ws, cfg(["alias.json"], {"op": "write", "content": "x"}))
    (read,) = run(ws, cfg(["alias.json"], "read"))
    assert read["files"][0]["text"] == "{}"
