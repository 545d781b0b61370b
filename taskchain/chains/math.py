"""math_chain: fold a list of integers with one arithmetic operation, one step per operation.

The sequence folded is `numbers` repeated `iterations` times, left to right:
numbers [1, 2, 3], operation add, iterations 2 is ((((1+2)+3)+1)+2)+3 = 12, in 5 steps.
Arithmetic is exact on Python integers; results are limited to MAX_DIGITS digits.
"""

from __future__ import annotations

import argparse
import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from taskchain.builtin_types import MATH_MAX_DIGITS, MATH_MAX_STEPS, TEXTS
from taskchain.chains import register
from taskchain.chains.base import ChainType, StepContext, StepPlan, brief, short_int
from taskchain.errors import InvalidInput, StepError

MAX_DIGITS = MATH_MAX_DIGITS
MAX_STEPS = MATH_MAX_STEPS
_LIMIT = 10**MAX_DIGITS  # the smallest number with MAX_DIGITS + 1 digits
_LIMIT_BITS = _LIMIT.bit_length()
_INT = re.compile(r"[+-]?\d+")

Operation = Literal["add", "subtract", "multiply", "divide", "power", "modulo"]
ALIASES = {
    "+": "add", "plus": "add", "sum": "add",
    "-": "subtract", "sub": "subtract", "minus": "subtract",
    "*": "multiply", "x": "multiply", "mul": "multiply", "times": "multiply",
    "/": "divide", "//": "divide", "div": "divide",
    "**": "power", "^": "power", "pow": "power",
    "%": "modulo", "mod": "modulo",
}  # fmt: skip
SYMBOLS = {
    "add": "+",
    "subtract": "-",
    "multiply": "*",
    "divide": "//",
    "power": "**",
    "modulo": "%",
}


class TooLarge(StepError):
    """A result over the size limit: known before running, so refused at submit."""


def _integer(value: Any) -> int:
    """An exact integer from an int or an integer string; floats, bools, NaN are refused."""
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not an integer")
    if isinstance(value, int):
        number = value
    elif isinstance(value, str) and _INT.fullmatch(value.strip()):
        if len(value.strip().lstrip("+-")) > MAX_DIGITS:
            raise ValueError(f"numbers are limited to {MAX_DIGITS} digits")
        number = int(value.strip())
    else:
        raise ValueError(f"{value!r} is not an integer (math_chain uses exact integer arithmetic)")
    if _too_big(number):
        raise ValueError(f"numbers are limited to {MAX_DIGITS} digits")
    return number


def _operation(value: Any) -> Any:
    return (
        ALIASES.get(value.strip().lower(), value.strip().lower())
        if isinstance(value, str)
        else value
    )


class MathConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    numbers: list[Annotated[int, BeforeValidator(_integer)]] = Field(min_length=1)
    operation: Annotated[Operation, BeforeValidator(_operation)] = "add"
    iterations: int = Field(default=1, ge=1, le=MAX_STEPS, strict=True)

    @model_validator(mode="after")
    def _step_count(self) -> MathConfig:
        operands = len(self.numbers) * self.iterations
        if operands < 2:
            raise ValueError("need at least two operands: give two numbers, or iterations >= 2")
        if operands - 1 > MAX_STEPS:
            raise ValueError(
                f"len(numbers) x iterations - 1 = {operands - 1} steps; the limit is {MAX_STEPS}"
            )
        return self

    @model_validator(mode="after")
    def _exponents(self) -> MathConfig:
        # Every operand after the first is a literal exponent: numbers[1:], and numbers[0]
        # too once the sequence repeats. Only the first base may be negative.
        if self.operation != "power":
            return self
        exponents = range(0 if self.iterations > 1 else 1, len(self.numbers))
        for i in exponents:
            if self.numbers[i] < 0:
                raise ValueError(
                    f"power with negative exponent {_short(self.numbers[i])} (numbers[{i}]) "
                    "has no integer result; exponents must be >= 0"
                )
        return self


def _too_big(number: int) -> bool:
    # Exact: a bound in bits would refuse some 4,000-digit numbers (10**4000 - 1 has 13,288
    # bits, as does 10**4000).
    return abs(number) >= _LIMIT


def apply(operation: str, acc: int, operand: int) -> int:
    """One exact operation; StepError for what integers cannot or should not represent."""
    if operation == "add":
        result = acc + operand
    elif operation == "subtract":
        result = acc - operand
    elif operation == "multiply":
        result = acc * operand
    elif operation in ("divide", "modulo"):
        if operand == 0:
            raise StepError(f"division by zero ({acc} {SYMBOLS[operation]} 0)")
        result = acc // operand if operation == "divide" else acc % operand
    elif operation == "power":
        if operand < 0:
            raise StepError(f"power with negative exponent {operand} is not an integer")
        # acc**operand >= 2**(operand * (bits - 1)): refuse before computing a huge power.
        if abs(acc) > 1 and operand * (abs(acc).bit_length() - 1) >= _LIMIT_BITS:
            raise TooLarge(f"{_short(acc)} ** {_short(operand)} would exceed {MAX_DIGITS} digits")
        result = acc**operand
    else:
        raise StepError(f"unknown operation {operation!r}")
    if _too_big(result):
        raise TooLarge(f"result of {operation} would exceed {MAX_DIGITS} digits")
    return result


def _short(number: int) -> str:
    text = str(number)
    return text if len(text) <= 12 else f"{text[:5]}...({len(text)} digits)"


@register
class MathChain(ChainType):
    name = "math_chain"
    queue = "math"
    summary, details = TEXTS["math_chain"]
    Config = MathConfig

    @classmethod
    def add_flags(cls, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--numbers", nargs="+", action="extend", metavar="N")
        parser.add_argument("--operation", metavar="OP")
        parser.add_argument("--iterations", type=_flag_int, metavar="K")

    @classmethod
    def check(cls, config: Any, workspace: Any) -> None:
        # Refuse at submit what would blow past the size limit (a power tower), rather than
        # fail later; a zero divisor is left to the step, which fails with its own message.
        acc = 0
        for step in cls.plan(config):
            acc = step.params.get("initial", acc)
            try:
                acc = apply(step.params["op"], acc, step.params["operand"])
            except TooLarge as exc:
                raise InvalidInput(f"math_chain: {exc}") from None
            except StepError:
                return

    @classmethod
    def plan(cls, config: Any) -> list[StepPlan]:
        sequence = list(config.numbers) * config.iterations
        op = config.operation
        steps = []
        for position, operand in enumerate(sequence[1:], start=1):
            params: dict[str, Any] = {"op": op, "operand": operand}
            if position == 1:
                params["initial"] = sequence[0]
            steps.append(StepPlan(name=f"{op} {_short(operand)}", params=params))
        return steps

    @classmethod
    def run_step(cls, config: Any, step: StepPlan, previous: Any, ctx: StepContext) -> Any:
        acc = step.params.get("initial", previous)
        if not isinstance(acc, int):
            raise StepError(f"expected an integer from the previous step, got {acc!r}")
        return apply(step.params["op"], acc, step.params["operand"])

    @classmethod
    def summarize(cls, result: Any) -> str:
        """The value; a long integer as its first and last digits and its length."""
        if isinstance(result, int) and not isinstance(result, bool):
            return short_int(result)
        return brief(result)

    @classmethod
    def outputs(cls, config: Any) -> dict[str, str]:
        """`value`: the chain's result, an integer."""
        return {"value": "integer"}

    @classmethod
    def output_values(cls, config: Any, result: Any) -> dict[str, Any]:
        is_int = isinstance(result, int) and not isinstance(result, bool)
        return {"value": result} if is_int else {}


def _flag_int(text: str) -> int:
    if not _INT.fullmatch(text.strip()):
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer")
    return int(text)
