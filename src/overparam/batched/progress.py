"""Members of a stacked model that end before the group: each at the step its single run ends at.

A member whose own `trainer.max_steps` is reached (or whose own stop rule fires) is frozen there while the
others go on, without ending the group's chunk (an extra chunk end would shift the others' rows, epochs
and logging cadence). Its parameters and its reweighter's state are held; at the chunk end that reports
it, its last step's outputs, losses, q and objective stand in for the later ones the frozen network gave,
and what it logs is labelled with its own last step. After that it logs nothing more but its final
validation and test, also labelled with its last step.
"""

from __future__ import annotations

from torch import Tensor

from overparam.ensemble import member_of

STEP_ROWS = ("outputs", "losses", "q", "objectives")
STATE = ("ends", "reported", "last_rows", "reweighter_states", "report_epochs", "last_fit_row")


class MemberEnds:
    def __init__(self, max_steps: list[int]) -> None:
        self.max_steps = max_steps
        self.ends: dict[int, int] = {}  # member -> the step its run ends at
        self.reported: dict[int, int] = {}  # member -> the chunk end whose row reports its end
        self.last_rows: dict[int, dict[str, Tensor]] = {}  # member -> its last step's rows, to stand in
        self.reweighter_states: dict[int, dict[str, Tensor]] = {}  # member -> its reweighter's held state
        self.report_epochs: dict[int, int] = {}  # member -> the epoch of the row that reports its end
        self.last_fit_row: tuple[int, int] = (-1, 0)  # (step, epoch) of the group's latest row in fit

    def due(self, step: int) -> list[int]:
        """Members whose own step budget ends at `step` and that still train."""
        return [k for k, last in enumerate(self.max_steps) if last == step and k not in self.ends]

    def due_between(self, first: int, stop: int) -> bool:
        """Whether a member that still trains has its budget end at a step in [first, stop)."""
        return any(first <= last < stop and k not in self.ends for k, last in enumerate(self.max_steps))

    def end(self, k: int, step: int, rows: dict[str, Tensor] | None, reweighter) -> None:
        """Member k ends at `step`; `rows` are its last step's (None: its last chunk already reported it)."""
        self.ends[k] = step
        if rows is None:
            self.reported[k] = step
            if self.last_fit_row[0] == step:
                self.report_epochs[k] = self.last_fit_row[1]
        else:
            self.last_rows[k] = {name: rows[name][k].detach().clone() for name in STEP_ROWS}
        self.reweighter_states[k] = {
            name: value.detach().clone() for name, value in reweighter.state_dict().items()
        }

    def hold(self, reweighters) -> None:
        """Put the ended members' reweighters back in their held state after a step."""
        for k, state in self.reweighter_states.items():
            reweighters[k].load_state_dict(state)

    def stand_in(self, rows: dict[str, Tensor], chunk_end: int) -> dict[str, Tensor]:
        """The chunk end's rows with each ended member's own last rows in place of the frozen network's
        (once: this chunk end reports the member's end)."""
        pending = [k for k in self.last_rows if k not in self.reported]
        if not pending:
            return rows
        rows = {name: value.detach().clone() for name, value in rows.items()}
        for k in pending:
            for name in STEP_ROWS:
                rows[name][k] = self.last_rows[k][name]
            self.reported[k] = chunk_end
        return rows

    def labelled(
        self, values: dict[str, float], step: int, epoch: int, fitting: bool
    ) -> dict[tuple[int, int], dict[str, float]]:
        """Logged values by the (step, epoch) to write them at: an ended member's at its last step and
        the epoch its single run was in there (while fitting, only at the chunk end that reports it; its
        final validation and test always)."""
        if fitting:
            self.last_fit_row = (step, epoch)
        rows: dict[tuple[int, int], dict[str, float]] = {}
        for key, value in values.items():
            k, _ = member_of(key)
            if k is None or k not in self.ends:
                rows.setdefault((step, epoch), {})[key] = value
            elif fitting and self.reported.get(k) == step:
                self.report_epochs[k] = epoch
                rows.setdefault((self.ends[k], epoch), {})[key] = value
            elif not fitting:  # after fit the group's epoch moved on from its last row as the member's did
                own_epoch = self.report_epochs.get(k, epoch) + epoch - self.last_fit_row[1]
                rows.setdefault((self.ends[k], own_epoch), {})[key] = value
        return rows

    def summary(self, epoch: int) -> dict[int, dict[str, int]]:
        """Each ended member's last step and the epoch its run reports after fit (the group is at `epoch`)."""
        return {
            k: {"step": end, "epoch": self.report_epochs.get(k, epoch) + epoch - self.last_fit_row[1]}
            for k, end in self.ends.items()
        }

    def state_dict(self) -> dict:
        return {name: getattr(self, name) for name in STATE}

    def load_state_dict(self, state: dict) -> None:
        for name, value in state.items():
            setattr(self, name, value)
