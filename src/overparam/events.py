"""Step-indexed events: a participant that must act after a given optimizer step says so, and a
full-batch chunk of inner steps ends there, so a run with `run.inner_steps=k` equals `run.inner_steps=1`
step for step (see ../shared/design.md, "Step-indexed events")."""

from __future__ import annotations


class StepEvents:
    """Mixed into reweighters and callbacks that act at given optimizer steps."""

    def next_event_step(self, step: int) -> int | None:
        """The first step > `step` after which this participant acts (None: no further event).

        The module ends the chunk of inner steps there, then calls the participant's own hook.
        """
        return None


def chunk_end(step: int, longest: int, participants) -> int:
    """The step the chunk starting at `step` ends at: `step + longest`, or the earliest event before it."""
    end = step + longest
    for participant in participants:
        event = participant.next_event_step(step)
        if event is not None and step < event < end:
            end = event
    return end
