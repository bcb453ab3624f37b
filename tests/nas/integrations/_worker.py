"""A worker process for the distributed tests.

``python -m tests.nas.integrations._worker URL STUDY BUDGET DELAY DATA_DIR INDEX``.

Its objective is NB201's table (CIFAR-10 valid accuracy) behind a ``DELAY``-second pause, so that a
test can kill it mid-trial; each trial records the worker's pid.
"""

from __future__ import annotations

import os
import sys
import time

import optuna


def main(argv: list[str]) -> int:
    url, study_name, budget, delay, data_dir = argv[0], argv[1], int(argv[2]), float(argv[3]), argv[4]
    index = int(argv[5])
    from nas.integrations.distributed import open_storage, run_worker
    from nas.integrations.objective import make_objective
    from nas.search.objectives import TabularObjective
    from search_spaces import space_from_spec

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    space = space_from_spec("nb201")
    table = TabularObjective(space, data_dir=data_dir)

    def slow_table(trial: optuna.trial.Trial, genotype: tuple[str, ...]) -> float:
        trial.set_user_attr("pid", os.getpid())
        time.sleep(delay)
        return table.evaluate(genotype, space.to_graph(genotype)).value or 0.0

    storage = open_storage(url, heartbeat_interval=1, grace_period=2)
    study = optuna.create_study(storage=storage, study_name=study_name, direction="maximize", load_if_exists=True,
                                sampler=optuna.samplers.RandomSampler(seed=index))
    run_worker(study, make_objective(space, slow_table), budget, poll=0.2, timeout=300)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
