"""Fault points for the fault-injection tests (tests/test_faults.py): :func:`install` patches birdspec so
that the process signals itself at a chosen point; the tests call it in a forked child.

``python tests/fault_runner.py WHERE SIGNAL ARGS...`` does the same from a shell: it runs
``birdspec ARGS...``, and at ``WHERE`` sends itself ``SIGNAL`` (KILL: the process dies on the spot, as under ``kill -9`` or a power cut; INT: Ctrl-C).
WHERE is one of:

- ``step:E:B``: the training step of batch B (from 0) of epoch E (from 1);
- ``resume-state:N``: the N-th save of Lightning's resume state, after its temporary file is written
  and before it replaces the old one;
- ``evaluate:N``: the N-th evaluation of a checkpoint (cv's test-fold evaluation), halfway through.
"""

from __future__ import annotations

import os
import signal
import sys


def _fire(sig: str) -> None:
    os.kill(os.getpid(), getattr(signal, f"SIG{sig}"))


def install(where: str, sig: str) -> None:
    if sig == "INT":  # Ctrl-C's Python meaning, whatever was inherited: a shell starts background jobs
        signal.signal(signal.SIGINT, signal.default_int_handler)  # with SIGINT ignored (the run would finish)
    kind, *nums = where.split(":")
    counter = {"n": 0}
    if kind == "step":
        from birdspec.training.module import BirdspecLightning

        epoch, batch = int(nums[0]), int(nums[1])
        real = BirdspecLightning.training_step

        def step(self, b, i):
            if self.current_epoch + 1 == epoch and i == batch:
                _fire(sig)
            return real(self, b, i)

        BirdspecLightning.training_step = step
    elif kind == "resume-state":
        import lightning.pytorch as pl

        real_save = pl.Trainer.save_checkpoint

        def save(self, path, *a, **k):
            real_save(self, path, *a, **k)
            counter["n"] += 1
            if counter["n"] == int(nums[0]):
                _fire(sig)

        pl.Trainer.save_checkpoint = save
    elif kind == "evaluate":
        from birdspec.evaluation import evaluate

        real_eval = evaluate.evaluate_checkpoint

        def ev(*a, **k):
            counter["n"] += 1
            if counter["n"] == int(nums[0]):
                _fire(sig)
            return real_eval(*a, **k)

        evaluate.evaluate_checkpoint = ev
    else:
        raise SystemExit(f"unknown fault point {where}")


if __name__ == "__main__":
    import torch

    torch.set_num_threads(1)  # as the tests' own process (conftest): the same arithmetic, the same results
    install(sys.argv[1], sys.argv[2])
    from birdspec.cli.main import main

    sys.exit(main(sys.argv[3:]))
