"""Issue 10, targets 1 and 2: whole-process wall time of commands, each against the floor
of the libraries it needs, in interleaved rounds (every command and floor once a round)."""

from __future__ import annotations

from collections import defaultdict

from common import CLI, PY, Row, base_env, log, measure, paired
from sides import Context

TYPER = "import typer"
READ = "import typer, rich, sqlmodel, pydantic_settings"
SUBMIT = "import typer, rich, sqlmodel, pydantic_settings, celery"
FLOORS = {TYPER: 1.5, READ: 1.15, SUBMIT: 1.3}  # the limit for each floor
# `taskchain` freezes the garbage collector as it exits (cli/__init__.main), so Python's
# exit-time collections skip every library object; a plain `python -c "import ..."` pays
# them. These floors skip them too: the like-for-like cost of the command's own work.
FROZEN = "; import gc; gc.freeze()"
LIKE_FOR_LIKE = {READ: READ + FROZEN, SUBMIT: SUBMIT + FROZEN}


def commands(chain_id: str) -> list[tuple[str, list[str], str]]:
    return [
        ("--help", ["--help"], TYPER),
        ("--version", ["--version"], TYPER),
        ("submit --help", ["submit", "--help"], TYPER),
        ("list --help", ["list", "--help"], TYPER),
        ("status ID", ["status", chain_id], READ),
        ("result ID", ["result", chain_id], READ),
        ("list", ["list"], READ),
        ("stats", ["stats"], READ),
        (
            "submit math_chain --numbers 1 2 3 (embedded)",
            ["submit", "math_chain", "--numbers", "1", "2", "3", "-q"],
            SUBMIT,
        ),
    ]


def run(ctx: Context) -> list[Row]:
    env = base_env(
        TASKCHAIN_DATABASE_URL=f"sqlite:///{ctx.scratch / 'startup.db'}",
        TASKCHAIN_WORKSPACE=str(ctx.scratch),
    )
    _, _, out = measure([*CLI, "submit", "math_chain", "--numbers", "1", "2", "3", "-q"], env)
    cmds = commands(out.strip())
    floors = [*FLOORS, *LIKE_FOR_LIKE.values()]
    jobs = [(f"floor: {code}", [PY, "-c", code]) for code in floors]
    jobs += [(name, [*CLI, *args]) for name, args, _ in cmds]
    seconds: dict[str, list[float]] = defaultdict(list)
    for round_ in range(ctx.r(1, 9)):
        log(f"startup round {round_ + 1}")
        shift = round_ % len(jobs)
        for name, args in jobs[shift:] + jobs[:shift]:
            seconds[name].append(measure(args, env)[0] * 1000)
    rows = [
        paired(
            "startup",
            name,
            "ms",
            seconds[name],
            seconds[f"floor: {floor}"],
            f"python -c {floor!r}",
            target=FLOORS[floor],
        )
        for name, _, floor in cmds
    ]
    return rows + [
        paired(
            "startup",
            f"{name} (floor also skips exit-time GC)",
            "ms",
            seconds[name],
            seconds[f"floor: {LIKE_FOR_LIKE[floor]}"],
            f"python -c {LIKE_FOR_LIKE[floor]!r}",
        )
        for name, _, floor in cmds
        if floor in LIKE_FOR_LIKE
    ]
