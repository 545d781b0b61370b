"""Shell completion: the callbacks themselves, and the real protocol a shell speaks to
`taskchain` at every TAB (`_TASKCHAIN_COMPLETE=complete_bash` in a subprocess)."""

from __future__ import annotations

import ast
import time
from pathlib import Path

import pytest
from typer.main import get_command
from typer.testing import CliRunner

from taskchain import settings
from taskchain.cli import app, complete
from tests.support import proc

IDS = ["3f-alpha", "3f-beta", "9c-gamma"]  # submitted in this order: 3f-beta is the newest 3f


@pytest.fixture
def populated(runner: CliRunner) -> list[str]:
    for chain_id in IDS:
        result = runner.invoke(
            app, ["submit", "math_chain", "--numbers", "1", "2", "--id", chain_id, "-q"]
        )
        assert result.exit_code == 0, result.output
        time.sleep(0.01)  # distinct creation times: newest first is then well defined
    return IDS


def values(suggestions: list[tuple[str, str]]) -> list[str]:
    return [value for value, _help in suggestions]


def test_chain_ids_complete_by_prefix_newest_first(populated: list[str]) -> None:
    assert values(complete.chain_ids(None, "3f")) == ["3f-beta", "3f-alpha"]
    assert values(complete.chain_ids(None, "")) == ["9c-gamma", "3f-beta", "3f-alpha"]
    assert complete.chain_ids(None, "zz") == []
    (first,) = complete.chain_ids(None, "9c")
    assert first[0] == "9c-gamma"
    assert first[1].startswith("math_chain COMPLETED 20")  # type, status, creation time


def test_chain_ids_are_a_query_with_a_limit(
    populated: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(complete, "MAX_IDS", 2)
    assert values(complete.chain_ids(None, "")) == ["9c-gamma", "3f-beta"]


def test_like_wildcards_in_what_was_typed_are_literal(populated: list[str]) -> None:
    assert complete.chain_ids(None, "3_") == []
    assert complete.chain_ids(None, "%") == []


def test_no_store_yet_offers_nothing_and_creates_none(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = tmp_path / "never" / "store.db"
    monkeypatch.setenv("TASKCHAIN_DATABASE_URL", f"sqlite:///{store}")
    settings.configure()
    assert complete.chain_ids(None, "") == []
    assert not store.exists() and not store.parent.exists()


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://postgres@127.0.0.1:1/none",  # nothing listens there
        "nonsense://x",  # not a SQLAlchemy URL at all
        "sqlite:////dev/null/store.db",  # a path that cannot exist
    ],
)
def test_an_unavailable_store_offers_nothing_fast(
    url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TASKCHAIN_DATABASE_URL", url)
    settings.configure()
    start = time.monotonic()
    assert complete.chain_ids(None, "3f") == []
    assert time.monotonic() - start < 5


def test_chain_types_and_statuses() -> None:
    from taskchain.chains import all_types

    offered = values(complete.chain_types(None, ""))
    assert offered == sorted(all_types())  # the registry, whatever else a test registered
    assert {"data_chain", "io_chain", "math_chain"} <= set(offered)
    assert complete.chain_types(None, "io")[0][0] == "io_chain"
    assert complete.chain_types(None, "io")[0][1].startswith("write, read, checksum")
    assert values(complete.statuses(None, "")) == [
        "PENDING", "RUNNING", "COMPLETED", "FAILED", "CANCELLED", "SKIPPED",
    ]  # fmt: skip
    assert values(complete.statuses(None, "c")) == ["completed", "cancelled"]
    assert values(complete.statuses(None, "F")) == ["FAILED"]
    assert values(complete.statuses(None, "sk")) == ["skipped"]


def test_plugin_types_complete_too(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TASKCHAIN_PLUGINS", "tests.support.chains")
    settings.configure()
    assert "probe_chain" in values(complete.chain_types(None, "p"))
    monkeypatch.setenv("TASKCHAIN_PLUGINS", "no.such.module")
    settings.configure()
    assert values(complete.chain_types(None, "m")) == ["math_chain"]  # built-ins still do


def test_every_id_type_and_status_parameter_completes() -> None:
    commands = get_command(app).commands  # type: ignore[attr-defined]
    wired = {
        (name, param.name): complete.source_for(param)
        for name, command in commands.items()
        for param in command.params
        if param._custom_shell_complete is not None
    }
    for name in ("status", "result", "watch", "delete", "cancel", "retry"):
        ids = [v for (cmd, _p), v in wired.items() if cmd == name]
        assert ids == [complete.chain_ids], name
    assert wired[("submit", "chain_type")] is complete.chain_types
    assert wired[("list", "chain_type")] is complete.chain_types
    assert wired[("list", "status")] is complete.statuses


def test_the_completion_module_imports_nothing_heavy_at_load() -> None:
    # `taskchain --help` loads it with every command: the store is imported inside callbacks.
    tree = ast.parse(Path(complete.__file__).read_text())
    top = [n for n in tree.body if isinstance(n, ast.Import | ast.ImportFrom)]
    modules = {n.module if isinstance(n, ast.ImportFrom) else n.names[0].name for n in top}
    assert modules == {"__future__", "collections.abc", "typing"}


# ---- the protocol, against a real process --------------------------------------------------


def tab(env: dict[str, str], line: str, shell: str = "bash") -> list[str]:
    """What `taskchain` answers when the shell asks it to complete the last word of `line`."""
    words = line.split(" ")
    extra = (
        {"COMP_WORDS": line, "COMP_CWORD": str(len(words) - 1)}
        if shell == "bash"
        else {"_TYPER_COMPLETE_ARGS": line}
    )
    result = proc.run([], {**env, "_TASKCHAIN_COMPLETE": f"complete_{shell}", **extra})
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    return [line for line in result.stdout.splitlines() if line]  # echo adds a newline


def test_bash_completes_ids_types_and_statuses(populated: list[str], env: dict[str, str]) -> None:
    assert tab(env, "taskchain status 3f") == ["3f-beta", "3f-alpha"]
    assert tab(env, "taskchain delete 3f-beta 3f") == ["3f-alpha"]  # not the one given
    assert tab(env, "taskchain submit ") == ["data_chain", "io_chain", "math_chain"]
    assert tab(env, "taskchain list --status fa") == ["failed"]
    assert tab(env, "taskchain list --type m") == ["math_chain"]
    assert tab(env, "taskchain sta") == ["status", "stats"]


def test_global_options_on_the_line_choose_the_store(
    populated: list[str], env: dict[str, str], tmp_path: Path
) -> None:
    other = tmp_path / "other.db"
    line = f"taskchain --database-url sqlite:///{other} status "
    assert tab(env, line) == []  # another (absent) store: nothing, and no traceback
    assert not other.exists()


def test_zsh_gets_the_help_of_each_id(populated: list[str], env: dict[str, str]) -> None:
    out = "\n".join(tab(env, "taskchain watch 9c", shell="zsh"))
    assert '"9c-gamma":"math_chain COMPLETED 20' in out


def test_an_unreachable_store_completes_nothing_without_a_traceback(env: dict[str, str]) -> None:
    down = {**env, "TASKCHAIN_DATABASE_URL": "postgresql://postgres@127.0.0.1:1/none"}
    assert tab(down, "taskchain status 3f") == []


def test_show_completion_prints_the_script_for_taskchain(env: dict[str, str]) -> None:
    result = proc.run(["--show-completion", "bash"], env)
    assert result.returncode == 0, result.stderr
    assert "_TASKCHAIN_COMPLETE=complete_bash" in result.stdout
    assert "complete -o default -F _taskchain_completion taskchain" in result.stdout
    help_text = proc.run(["--help"], env).stdout
    assert "--install-completion" in help_text and "--show-completion" in help_text
