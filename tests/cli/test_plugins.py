"""Chain types from installed packages (entry-point group `taskchain.chains`).

The plug-ins under tests/fixtures/ are installed by pip into a folder (`pip install --target`,
which builds them as any package is built, in an isolated build environment from the package
index). Each command runs in a fresh interpreter with the folder on PYTHONPATH, as after
`pip install taskchain-upper`; without it, the type does not exist.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import proc

FIXTURES = Path(__file__).parents[1] / "fixtures"


def install(package: Path, target: Path) -> None:
    """`pip install --no-deps --target TARGET PACKAGE`, as a user installs a plug-in; built from
    a copy, so that the fixture's folder gets no build files."""
    source = target.parent / f"src-{target.name}-{package.name}"
    shutil.copytree(package, source)
    done = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-input",
         "--disable-pip-version-check", "--target", str(target), str(source)],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert list(target.glob("*.dist-info/entry_points.txt")), "pip installed no entry points"


def with_path(env: dict[str, str], folder: Path) -> dict[str, str]:
    return {
        **env,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(folder), env.get("PYTHONPATH")])),
    }


@pytest.fixture(scope="module")
def upper_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder where pip installed taskchain-upper (once for this module: pip takes seconds)."""
    site = tmp_path_factory.mktemp("plugins") / "site-upper"
    install(FIXTURES / "plugin_pkg", site)
    return site


@pytest.fixture
def upper(env: dict[str, str], upper_site: Path) -> dict[str, str]:
    """`env` with taskchain-upper installed."""
    return with_path(env, upper_site)


@pytest.fixture
def broken(env: dict[str, str], tmp_path: Path) -> dict[str, str]:
    """`env` with taskchain-broken installed: importing it raises RuntimeError."""
    site = tmp_path / "site-broken"
    install(FIXTURES / "plugin_broken", site)
    return with_path(env, site)


def test_an_installed_plugin_adds_its_type(upper: dict[str, str]) -> None:
    info = proc.run(["info", "--json"], upper)
    assert info.returncode == 0, info.stderr
    assert json.loads(info.stdout)["chain_types"] == [
        "data_chain", "io_chain", "math_chain", "upper_chain",
    ]  # fmt: skip
    done = proc.run(["submit", "upper_chain", "--config", '{"words": ["ab", "Cd", "é"]}'], upper)
    assert done.returncode == 0, done.stderr
    chain_id = done.stdout.strip()
    result = json.loads(proc.run(["result", chain_id, "--json"], upper).stdout)
    assert (result["status"], result["result"]) == ("COMPLETED", ["AB", "CD", "É"])
    steps = json.loads(proc.run(["status", chain_id, "--json"], upper).stdout)["steps"]
    assert [(s["name"], s["queue"]) for s in steps] == [
        ("upper ab", "default"), ("upper Cd", "default"), ("upper é", "default"),
    ]  # fmt: skip


def test_without_the_package_the_type_is_unknown(env: dict[str, str]) -> None:
    done = proc.run(["submit", "upper_chain", "--config", '{"words": ["a"]}'], env)
    assert done.returncode == 2
    assert done.stderr.strip() == (
        "taskchain: error: unknown chain type 'upper_chain' (known: data_chain, io_chain, math_chain)"
    )
    assert proc.run(["list", "--json"], env).stdout.strip() == "[]"


WORKFLOW = """\
name: shout
jobs:
  shout:
    type: upper_chain
    config: {words: [one, two, three]}
  count:
    type: math_chain
    needs: [shout]
    config: {operation: multiply, numbers: ["${{ jobs.shout.outputs.count }}", 7]}
"""


def test_a_workflow_uses_a_plugin_type(upper: dict[str, str], workspace: Path) -> None:
    (workspace / "shout.yaml").write_text(WORKFLOW)
    done = proc.run(["run", "shout.yaml", "-q"], upper, cwd=workspace)
    assert done.returncode == 0, done.stderr
    workflow_id = done.stdout.strip()
    doc = json.loads(proc.run(["result", workflow_id, "--json"], upper).stdout)
    assert (doc["status"], doc["result"]) == (
        "COMPLETED", {"shout": {"count": 3}, "count": {"value": 21}},
    )  # fmt: skip
    jobs = json.loads(proc.run(["status", workflow_id, "--json"], upper).stdout)["jobs"]
    shout = next(job["chain_id"] for job in jobs if job["name"] == "shout")
    assert proc.run(["result", shout], upper).stdout == '["ONE","TWO","THREE"]\n'


def test_a_workflow_naming_a_missing_plugin_type_is_refused(
    env: dict[str, str], workspace: Path
) -> None:
    (workspace / "shout.yaml").write_text(WORKFLOW)
    done = proc.run(["run", "shout.yaml"], env, cwd=workspace)
    assert done.returncode == 2
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "job 'shout': type: unknown chain type 'upper_chain'" in done.stderr


BROKEN = (
    "taskchain: error: plug-in 'broken' (taskchain_broken, entry point taskchain.chains) failed to load: "
    "RuntimeError: taskchain_broken needs a licence key"
)


@pytest.mark.parametrize(
    "args",
    [
        ["info"],
        ["submit", "upper_chain", "--config", '{"words": ["a"]}'],
        ["worker"],
    ],
    ids=["info", "submit-unknown-type", "worker"],
)
def test_a_plugin_that_fails_to_load_is_one_line(broken: dict[str, str], args: list[str]) -> None:
    env = (
        {**broken, "TASKCHAIN_BROKER_URL": "redis://127.0.0.1:1/0"}
        if args == ["worker"]
        else broken
    )
    done = proc.run(args, env)
    assert (done.returncode, done.stderr.strip(), done.stdout) == (2, BROKEN, "")


def test_a_broken_plugin_costs_nothing_to_built_in_types(broken: dict[str, str]) -> None:
    """Entry points are read only for a type that is not built in: math_chain still runs."""
    done = proc.run(["submit", "math_chain", "--numbers", "1", "2", "3", "-q"], broken)
    assert done.returncode == 0, done.stderr
    assert proc.run(["result", done.stdout.strip()], broken).stdout == "6\n"


def test_a_settings_plugin_raising_its_own_error_is_one_line(
    env: dict[str, str], tmp_path: Path
) -> None:
    site = tmp_path / "site"
    shutil.copytree(FIXTURES / "plugin_broken" / "taskchain_broken", site / "taskchain_broken")
    done = proc.run(
        ["--plugins", "taskchain_broken", "submit", "math_chain", "--numbers", "1"],
        with_path(env, site),
    )
    assert (done.returncode, done.stderr.strip()) == (
        2,
        "taskchain: error: TASKCHAIN_PLUGINS: plug-in 'taskchain_broken' failed to load: "
        "RuntimeError: taskchain_broken needs a licence key",
    )


_COUNT = """
import importlib.metadata as md, json, os, sys
calls = []
real = md.entry_points
def counted(*args, **kwargs):
    if kwargs.get("group") == "taskchain.chains":  # pydantic reads its own group
        calls.append(kwargs["group"])
    return real(*args, **kwargs)
md.entry_points = counted
sys.argv = ["taskchain", *json.loads(os.environ["TC_ARGS"])]
code = 0
try:
    from taskchain.cli import main
    main()
except SystemExit as exc:
    code = exc.code
print(json.dumps({"code": code, "scans": calls}), file=sys.stderr)
"""


def scans(env: dict[str, str], *args: str) -> tuple[int, list[str]]:
    """Run `taskchain ARGS`: its exit code and the entry-point groups it scanned."""
    done = subprocess.run(
        [sys.executable, "-c", _COUNT], env={**env, "TC_ARGS": json.dumps(args)},
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    found = json.loads(done.stderr.strip().splitlines()[-1])
    return found["code"], found["scans"]


def test_entry_points_are_scanned_only_when_a_type_is_not_built_in(upper: dict[str, str]) -> None:
    first = proc.run(["submit", "math_chain", "--numbers", "1", "2", "-q"], upper)
    assert first.returncode == 0, first.stderr
    chain_id = first.stdout.strip()
    for args in (
        ["--help"], ["--version"], ["submit", "--help"], ["status", chain_id],
        ["result", chain_id], ["list"], ["stats"],
        ["submit", "math_chain", "--numbers", "4", "5", "-q"],
    ):  # fmt: skip
        assert scans(upper, *args) == (0, []), args
    assert scans(upper, "submit", "upper_chain", "--config", '{"words": ["x"]}', "-q") == (
        0,
        ["taskchain.chains"],
    )
    assert scans(upper, "info") == (0, ["taskchain.chains"])


@pytest.mark.redis
def test_a_worker_runs_a_plugin_type(upper: dict[str, str], redis_url: str, tmp_path: Path) -> None:
    distributed = {**upper, "TASKCHAIN_BROKER_URL": redis_url}
    with proc.worker(distributed, tmp_path / "worker.log"):
        done = proc.run(
            ["submit", "upper_chain", "--config", '{"words": ["x", "y"]}', "--wait", "-q"],
            distributed,
        )
    assert done.returncode == 0, done.stderr
    result = json.loads(proc.run(["result", done.stdout.strip(), "--json"], distributed).stdout)
    assert (result["status"], result["result"]) == ("COMPLETED", ["X", "Y"])


CLASS_PLUGIN = """
from taskchain.chains import ChainType, StepPlan
from taskchain.chains.math import MathConfig


class Plain(ChainType):  # not decorated: the entry point names the class itself
    name = "{name}"
    queue = "math"
    summary = "a plug-in given as a class"
    Config = MathConfig

    @classmethod
    def plan(cls, config):
        return [StepPlan("count", {{}})]

    @classmethod
    def run_step(cls, config, step, previous, ctx):
        return len(config.numbers)
"""


def class_package(root: Path, module: str, type_name: str) -> Path:
    package = root / module
    (package / module).mkdir(parents=True)
    (package / module / "__init__.py").write_text(CLASS_PLUGIN.format(name=type_name))
    (package / "pyproject.toml").write_text(
        f'[project]\nname = "{module}"\nversion = "1.0"\n'
        f'[project.entry-points."taskchain.chains"]\n{module} = "{module}:Plain"\n'
    )
    return package


def test_an_entry_point_may_name_a_class_but_not_replace_a_type(
    env: dict[str, str], tmp_path: Path
) -> None:
    site = tmp_path / "site"
    site.mkdir()
    install(class_package(tmp_path, "count_plugin", "count_chain"), site)
    counted = with_path(env, site)
    done = proc.run(["submit", "count_chain", "--config", '{"numbers": [5, 6, 7]}'], counted)
    assert done.returncode == 0, done.stderr
    assert proc.run(["result", done.stdout.strip()], counted).stdout == "3\n"
    install(class_package(tmp_path, "clash_plugin", "math_chain"), site)
    clash = proc.run(["info"], counted)
    assert (clash.returncode, clash.stderr.strip()) == (
        2,
        "taskchain: error: plug-in 'clash_plugin' (clash_plugin:Plain, entry point "
        "taskchain.chains) redefines the chain type 'math_chain'; a plug-in adds types "
        "(TASKCHAIN_PLUGINS may replace one)",
    )
    # The built-in type is untouched (and a submit of it never reads the entry points).
    math = proc.run(["submit", "math_chain", "--numbers", "5", "6", "7", "-q"], counted)
    assert proc.run(["result", math.stdout.strip()], counted).stdout == "18\n"
