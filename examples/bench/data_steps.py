"""data_chain's three steps in one process through the chain plug-in API (README,
"Extending"), without the CLI, the store or Celery around them.

    python data_steps.py WORKSPACE FILE.csv CHAIN_ID
"""

import json
import sys
import time
from pathlib import Path

from taskchain.chains import StepContext, get_type

kind = get_type("data_chain")
workspace, name, chain_id = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
config = kind.parse({"data_input": name, "processing_steps": ["clean", "transform", "analyze"]})
kind.check(config, workspace)
plan = kind.plan(config)
previous, seconds = None, {}
for index, step in enumerate(plan):
    start = time.perf_counter()
    ctx = StepContext(chain_id=chain_id, index=index, step_count=len(plan), workspace=workspace)
    previous = kind.run_step(config, step, previous, ctx)
    seconds[step.name] = time.perf_counter() - start
print(json.dumps({"seconds": seconds, "rows": previous["rows"]}))
