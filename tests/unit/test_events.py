"""chunk_end: a chunk of inner steps ends at the earliest event any participant names inside it."""

from __future__ import annotations

from overparam.events import StepEvents, chunk_end


class At(StepEvents):
    def __init__(self, *steps: int) -> None:
        self.steps = steps

    def next_event_step(self, step: int) -> int | None:
        return next((s for s in self.steps if s > step), None)


def test_a_chunk_ends_at_the_first_event_inside_it():
    assert chunk_end(0, 100, [At(150), At(40, 90)]) == 40
    assert chunk_end(40, 100, [At(150), At(40, 90)]) == 90
    assert chunk_end(90, 100, [At(150), At(40, 90)]) == 150  # 150 < 90 + 100


def test_events_outside_the_chunk_and_participants_without_events_leave_it_whole():
    assert chunk_end(0, 100, [At(), StepEvents(), At(100)]) == 100
    assert chunk_end(7, 10, [At(500)]) == 17
