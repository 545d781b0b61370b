"""A concurrent submitter for the load tests: `python -m tests.support.submitter N`.

Submits N math chains through the library (the store and broker come from TASKCHAIN_*),
prints one JSON line: {"ids": [...], "errors": [...]}.
"""

from __future__ import annotations

import json
import sys

from taskchain.engine.submit import submit
from taskchain.errors import TaskchainError


def main(count: int) -> None:
    ids: list[str] = []
    errors: list[str] = []
    for k in range(count):
        try:
            ids.append(submit("math_chain", {"numbers": [k, 1, 1]}).chain_id)
        except TaskchainError as exc:
            errors.append(str(exc))
    print(json.dumps({"ids": ids, "errors": errors}))


if __name__ == "__main__":
    main(int(sys.argv[1]))
