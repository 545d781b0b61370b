"""data_chain: clean, transform and analyze a CSV file, one step per operation, in any order.

Steps pass file references, never data: each step reads the table named by the previous
step's result (the first reads `data_input`), writes its output under the chain's folder
`.taskchain/<chain id>/` in the workspace, and returns a small JSON result naming it:

    clean      → N-clean.parquet      text trimmed; blank, incomplete, duplicate rows dropped
    transform  → N-transform.parquet  snake_case unique names; typed columns
    analyze    → N-analyze.json       the summary; the table it read passes on unchanged

(N is the step's position, 1-based.) Tables between steps are Parquet files; when the next
step runs in the same process, it gets a table that fits in memory from there instead of
reading the file (`_data_frames`: the same content, so the same results and files).

Reading (`_data_dialect`, `_data_read`): the delimiter is detected (comma, tab, semicolon,
pipe) or given; header names are trimmed and made unique; values are trimmed, and empty
text or a null marker (`null_values`) is missing. The step that reads the CSV says how in
its result (`read`), and every later step passes that on, as it passes on what `clean`
dropped (`cleaned`): the chain's final result explains its row count, whatever step is last.

Types (transform; analyze computes its statistics the same way). A text column becomes the
first of these that holds every value exactly: boolean (true/false, any case), integer
(64-bit, else 128-bit; no leading zero: 007 and 02134 stay text), float (finite decimals
like 2.5, .5, 1e-3; no leading zero, under 16 digits before the point), date (YYYY-MM-DD),
datetime (YYYY-MM-DD HH:MM:SS or with T, optional fraction, no time zone); else text.
Integers too big for 128 bits stay text, with a note.
"""

from __future__ import annotations

import argparse
from pathlib import Path, PurePosixPath
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field

from taskchain.builtin_types import TEXTS
from taskchain.chains import register
from taskchain.chains._data_dialect import delimiter_value, detect
from taskchain.chains.base import ChainType, StepContext, StepPlan
from taskchain.errors import InvalidInput, StepError
from taskchain.workspace import confine

Step = Literal["clean", "transform", "analyze"]
STEPS: tuple[Step, ...] = ("clean", "transform", "analyze")
MAX_STEPS = 20
#: Columns whose statistics a result carries by default (`result_columns`); the summary
#: file always has all of them.
RESULT_COLUMNS = 100
NULL_VALUES = ("NA", "N/A", "null", "NULL", "NaN", "-")
MAX_NULL_VALUES = 50
SNIFF_BYTES = 1024


def _path(value: str) -> str:
    if not value.strip() or "\x00" in value:
        raise ValueError(f"{value!r} is not a usable path")
    return value


def _step_names(value: Any) -> Any:
    """Names from a list or a comma-separated string, trimmed and lower-cased."""
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list | tuple):
        return value
    names = []
    for item in value:
        if not isinstance(item, str):
            raise ValueError(f"a step is a name ({', '.join(STEPS)}), not {item!r}")
        for name in (n.strip().lower() for n in item.split(",")):
            if name and name not in STEPS:
                raise ValueError(f"unknown step {name!r} (known: {', '.join(STEPS)})")
            if name:
                names.append(name)
    if not names:
        raise ValueError(f"give at least one step: {', '.join(STEPS)}")
    return names


def _null_values(value: Any) -> Any:
    """Markers trimmed (values are matched trimmed), empty ones and repeats left out: empty
    text is always missing."""
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list | tuple):
        return value
    if not all(isinstance(item, str) for item in value):
        raise ValueError("a null value is text, like 'NA' or '-'")
    markers = [item.strip() for item in value]
    if any(len(m) > 100 or "\n" in m or "\r" in m for m in markers):
        raise ValueError("a null value is one line of at most 100 characters")
    return list(dict.fromkeys(m for m in markers if m))


class DataConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    data_input: Annotated[str, AfterValidator(_path)]
    processing_steps: Annotated[list[Step], BeforeValidator(_step_names)] = Field(
        default_factory=lambda: list(STEPS), min_length=1, max_length=MAX_STEPS
    )
    #: None: detected from the file (comma, tab, semicolon, pipe).
    delimiter: Annotated[str | None, BeforeValidator(delimiter_value)] = None
    null_values: Annotated[list[str], BeforeValidator(_null_values)] = Field(
        default_factory=lambda: list(NULL_VALUES), max_length=MAX_NULL_VALUES
    )
    result_columns: int = Field(default=RESULT_COLUMNS, ge=0, le=1_000_000, strict=True)


@register
class DataChain(ChainType):
    name = "data_chain"
    queue = "data"
    summary, details = TEXTS["data_chain"]
    Config = DataConfig

    @classmethod
    def add_flags(cls, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--input", dest="data_input", metavar="CSV")
        parser.add_argument(
            "--steps", dest="processing_steps", nargs="+", action="extend",
            metavar="STEP[,STEP...]",
        )  # fmt: skip
        parser.add_argument("--delimiter", dest="delimiter", metavar="CHAR|NAME")
        # Zero markers (`--null-values` alone) is a choice: only empty cells are missing.
        parser.add_argument(
            "--null-values", dest="null_values", nargs="*", action="extend", metavar="MARKER"
        )

    @classmethod
    def check(cls, config: Any, workspace: Path) -> None:
        try:
            path = confine(workspace, config.data_input)
        except InvalidInput as exc:
            raise InvalidInput(f"data_chain: data_input: {exc}") from None
        if _chain_table(workspace, path):
            return
        problem = sniff(path) or _dialect(path, config.delimiter)[1]
        if problem:
            raise InvalidInput(f"data_chain: data_input {config.data_input!r} {problem}")

    @classmethod
    def plan(cls, config: Any) -> list[StepPlan]:
        return [StepPlan(name=step, params={"step": step}) for step in config.processing_steps]

    @classmethod
    def run_step(cls, config: Any, step: StepPlan, previous: Any, ctx: StepContext) -> Any:
        from taskchain.chains import _data_frames

        last = ctx.index + 1 >= ctx.step_count
        try:
            return cls._run(config, step, previous, ctx, hold=not last)
        except BaseException:
            _data_frames.release()
            raise
        finally:
            if last:
                _data_frames.release()

    @classmethod
    def _run(cls, config: Any, step: StepPlan, previous: Any, ctx: StepContext, hold: bool) -> Any:
        """One step; `hold`: a table it writes in memory stays there for the next step."""
        from taskchain.chains import _data_clean, _data_frames
        from taskchain.chains import _data_ops as ops

        name = step.params.get("step", step.name)
        source = _source(config, previous, ctx)
        _data_frames.release(unless=source.path)
        root, folder = ctx.workspace.resolve(), ctx.chain_dir.resolve()
        number = f"{ctx.index + 1}-{name}"
        if name in ("clean", "transform"):
            target = folder / f"{number}.parquet"
            write = _data_clean.clean if name == "clean" else ops.transform
            done = write(source, target, ctx.report, hold=hold)
            table = _rel(target, root)
        elif name == "analyze":
            target = folder / f"{number}.json"
            summary = ops.analyze(source, target, ctx.report)
            read = summary.pop("read", None)
            done = {
                "rows": summary["rows"],
                "columns": len(summary["columns"]),
                "summary": _shortened(summary, config.result_columns),
            } | ({"read": read} if read else {})
            table = source.rel  # the data passes on unchanged
        else:
            raise StepError(f"unknown step {name!r}")
        return (
            {
                "step": name,
                "input": source.rel,
                "file": _rel(target, root),
                "table": table,
            }
            | done
            | _carried(name, done, previous)
        )

    @classmethod
    def summarize(cls, result: Any) -> str:
        """One line for one step's result, e.g. `clean: 1,000 rows in, 990 out (7 duplicate,
        3 blank), 10 columns -> .taskchain/<id>/1-clean.parquet`."""
        from taskchain.chains._data_summary import summarize

        return summarize(result)

    @classmethod
    def outputs(cls, config: Any) -> dict[str, str]:
        """`table`: the last table (the last clean or transform step's Parquet file, else
        `data_input`); `report`: the last analyze step's JSON summary, when there is one."""
        declared = {"table": "path"}
        if "analyze" in config.processing_steps:
            declared["report"] = "path"
        return declared

    @classmethod
    def output_values(cls, config: Any, result: Any) -> dict[str, Any]:
        if not isinstance(result, dict):
            return {}
        values: dict[str, Any] = {}
        if isinstance(result.get("table"), str):
            values["table"] = result["table"]
        file = result.get("file")
        steps = list(config.processing_steps)
        if "analyze" in steps and isinstance(file, str):
            # Every step writes `<chain folder>/<position>-<step>.<ext>`; the last step's file
            # names the folder, so the report is found even when analyze is not last.
            position = len(steps) - steps[::-1].index("analyze")
            values["report"] = str(PurePosixPath(file).parent / f"{position}-analyze.json")
        return values


def _carried(name: str, done: dict[str, Any], previous: Any) -> dict[str, Any]:
    """What later steps pass on: how the CSV was read (`read`, unless this step read it
    itself), and the rows every `clean` so far dropped (`cleaned`), so that the chain's
    final result explains its row count whatever its last step is."""
    before = previous if isinstance(previous, dict) else {}
    out: dict[str, Any] = {}
    if "read" not in done and isinstance(before.get("read"), dict):
        out["read"] = before["read"]
    cleaned = before.get("cleaned")
    if not isinstance(cleaned, dict) or not isinstance(cleaned.get("dropped"), dict):
        cleaned = None
    if name == "clean":
        dropped = dict(done["dropped"])
        if cleaned:
            dropped = {k: v + int(cleaned["dropped"].get(k, 0)) for k, v in dropped.items()}
        rows_in = cleaned["rows_in"] if cleaned else done["rows_in"]
        cleaned = {"rows_in": rows_in, "rows": done["rows"], "dropped": dropped}
    if cleaned:
        out["cleaned"] = cleaned
    return out


def _source(config: DataConfig, previous: Any, ctx: StepContext) -> Any:
    """The table this step reads: `data_input`, or the table the previous step passed on."""
    from taskchain.chains._data_read import Table

    root = ctx.workspace.resolve()
    delimiter = ","
    if ctx.index == 0:
        given = config.data_input
    elif isinstance(previous, dict) and isinstance(previous.get("table"), str):
        given = previous["table"]
    else:
        raise StepError("the previous step's result names no table")
    try:
        path = confine(root, given)
    except InvalidInput as exc:  # a symlink changed since submit: a failed step, not bad input
        raise StepError(str(exc)) from None
    own = path.is_relative_to(ctx.chain_dir.resolve())
    rel = _rel(path, root)
    if own and not path.is_file():
        raise StepError(f"{rel}, written by the previous step, is missing; run the chain again")
    own = own or _chain_table(root, path)
    if not own:
        problem = sniff(path)
        if not problem:
            delimiter, problem = _dialect(path, config.delimiter)
        if problem:
            raise StepError(f"{rel} {problem}")
    markers = tuple(config.null_values)
    return Table(path=path, rel=rel, csv=not own, delimiter=delimiter, null_values=markers)


def _dialect(path: Path, given: str | None) -> tuple[str, str | None]:
    """The file's delimiter, and what makes it unusable (see `_data_dialect.detect`)."""
    try:
        return detect(path, given)
    except OSError as exc:
        return given or ",", f"cannot be read: {exc.strerror or exc}"


def sniff(path: Path) -> str | None:
    """What makes `path` unusable as CSV text, judged from its first KB; None if nothing."""
    try:
        if path.is_dir():
            return "is a folder, not a CSV file"
        if not path.is_file():
            return "is not a regular file" if path.exists() else "does not exist"
        with path.open("rb") as file:
            head = file.read(SNIFF_BYTES)
    except OSError as exc:
        return f"cannot be read: {exc.strerror or exc}"
    if not head:
        return "is empty"
    if not head.removeprefix(b"\xef\xbb\xbf").strip() and len(head) < SNIFF_BYTES:
        return "is empty (no header line)"
    if b"\x00" in head:
        return "looks binary (it has NUL bytes), not like CSV text"
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 3:  # not merely a character cut in two at the 1 KB mark
            return f"is not UTF-8 text (byte 0x{head[exc.start]:02x} at offset {exc.start})"
    return None


def _chain_table(workspace: Path, path: Path) -> bool:
    """Whether `path` is a Parquet table another chain wrote (a workflow passes one on as
    `data_input`): read as the table it is, not sniffed as CSV. Only under `.taskchain/`,
    where no user file lives, so every such table has the columns a data step writes."""
    internal = workspace.resolve() / ".taskchain"
    return path.suffix == ".parquet" and path.is_relative_to(internal) and path.is_file()


def _rel(path: Path, root: Path) -> str:
    return path.relative_to(root).as_posix()


def _shortened(summary: dict[str, Any], limit: int) -> dict[str, Any]:
    """The summary, with the first `limit` columns (the file has them all)."""
    columns = summary["columns"]
    if len(columns) <= limit:
        return summary
    kept = dict(list(columns.items())[:limit])
    return {**summary, "columns": kept, "columns_omitted": len(columns) - limit}
