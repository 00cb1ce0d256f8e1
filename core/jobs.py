"""Training jobs: what the launcher starts and `train/run.py --job NAME` trains. The config expands once into
a flat list (`ExperimentConfig.jobs()`): every training arm (and its seed copies), then the jobs tasks train
for their measurements (conductivity probes). Each job is one checkpoint, `checkpoints/<name>/`."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional


@dataclass(frozen=True)
class Job:
    name: str                          # its checkpoint directory and W&B run
    arm: Any                           # the arm config its trainer reads (an SftArm for a probe)
    data: str                          # the prepared file under data/ it trains on
    start: Optional[str] = None        # the job of this run whose checkpoint it starts from
    # else an outside model (a base arm's `model:`); neither: the base model
    start_model: Optional[str] = None
    # a measurement's job fine-tunes this arm's model: its cost is the measurement's, never added to the arm's
    probe_of: Optional[str] = None

    @property
    def adds_start_cost(self) -> bool:
        """A two-stage arm carries its first stage's cost; a probe does not carry the model's it starts
        from."""
        return self.start is not None and self.probe_of is None


def arm_job(cfg, arm) -> Job:
    """The job that trains a training arm: on the data its kind names, from init_from's checkpoint if set."""
    return Job(arm.name, arm, arm.data_file.format(family=cfg.family(arm.name)), start=arm.init_from)
