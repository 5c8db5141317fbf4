"""Step bookkeeping of a run whose epochs may differ in length (co-teaching trains on a shrinking selected
fraction of each epoch): global step <-> (epoch, step within the epoch), epoch boundaries, LR milestones."""
from __future__ import annotations

import bisect
from itertools import accumulate


class EpochSchedule:
    """steps_per_epoch[e] optimiser steps in epoch e (0-based); training may stop early at max_steps."""

    def __init__(self, steps_per_epoch: list, max_steps: int = 0):
        self.steps_per_epoch = [int(s) for s in steps_per_epoch]
        if not self.steps_per_epoch or min(self.steps_per_epoch) < 1:
            raise ValueError("every epoch needs at least one step, got %s" % self.steps_per_epoch)
        self.starts = [0] + list(accumulate(self.steps_per_epoch))  # starts[e]: first step of epoch e
        self.total_steps = self.starts[-1] if not max_steps else min(self.starts[-1], max_steps)

    def locate(self, step: int) -> tuple:
        """Global step (0-based, < all epochs' steps) -> (epoch, step within that epoch)."""
        if not 0 <= step < self.starts[-1]:
            raise ValueError("step %d is outside the schedule's %d steps" % (step, self.starts[-1]))
        epoch = bisect.bisect_right(self.starts, step) - 1
        return epoch, step - self.starts[epoch]

    def ends_epoch(self, steps_done: int) -> bool:
        """True when `steps_done` steps complete an epoch."""
        return steps_done in self.starts[1:]

    def milestones(self, epochs) -> list:
        """First steps of the given epochs (LR drops); epochs past the end of the schedule are left out."""
        return [self.starts[e] for e in epochs if 0 <= e < len(self.starts)]
