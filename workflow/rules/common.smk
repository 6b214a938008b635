# Shared by every rule file: the library on the path, the checked params, the
# software environment and the result paths.

import os
import sys

# Jobs run this checkout's library (src/), whatever environment they run in:
# the project venv, a conda env from workflow/envs/, or a cluster node.
SRC = os.path.join(workflow.basedir, "src")
sys.path.insert(0, SRC)
# (Jobs inherit the environment, locally and through sbatch.)
os.environ.update(PYTHONPATH=os.pathsep.join(filter(None, [SRC, os.environ.get("PYTHONPATH")])))

from expsearch.params import check_params

PARAMS = check_params(config, source="params.yaml")
ENV = "../envs/expsearch.yaml"  # conda env of every rule (used with --sdm conda)
RESULTS = "results"
