"""States of the trainer's rows.

A round is ``training`` (its current attempt's jobs are trained) → ``trained`` (a model version is
registered) or ``failed`` (announced; a person may retry it, which makes it ``training`` again with
the next attempt). A member job is ``queued`` → ``running`` (leased) → ``done`` | ``failed``.
"""

from __future__ import annotations

QUEUED, RUNNING, DONE, FAILED = "queued", "running", "done", "failed"
ROUND_TRAINING, ROUND_TRAINED, ROUND_FAILED = "training", "trained", "failed"
SOURCE = "trainer"
