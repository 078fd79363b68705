"""The app's own admission queue for training runs: first come, first served, `slots` at a time.

Gradio admits every Train press at once (a run still in Gradio's queue cannot write to the page), and the
handler waits here instead, so it can tell its user the truth ("waiting: 2 runs ahead") and Stop can
cancel a run before it starts.

    ticket = queue.join()
    while not ticket.wait(0.5):             # False while waiting
        if stopped(): ticket.leave(); return
        show(f"waiting: {ticket.ahead()} runs ahead")
    try: train()
    finally: ticket.leave()
"""

from __future__ import annotations

import itertools
import threading


class QueueFull(ValueError):
    """Too many runs waiting: the user should try again later."""


class Ticket:
    def __init__(self, queue: AdmissionQueue, number: int):
        self.queue, self.number = queue, number

    def ahead(self) -> int:
        """Runs before this one: the running ones and those waiting in front."""
        return self.queue._ahead(self)

    def admitted(self) -> bool:
        return self.ahead() < self.queue.slots

    def wait(self, timeout: float) -> bool:
        """Block up to `timeout` s for admission; True once admitted."""
        with self.queue._changed:
            if not self.admitted():
                self.queue._changed.wait(timeout)
            return self.admitted()

    def leave(self) -> None:
        """Done, stopped or cancelled: the next run may start."""
        self.queue._leave(self)


class AdmissionQueue:
    """FIFO of tickets; the first `slots` tickets run, the others wait (at most `max_waiting` of them)."""

    def __init__(self, slots: int = 1, max_waiting: int = 16):
        self.slots, self.max_waiting = slots, max_waiting
        self._tickets: list[Ticket] = []
        self._numbers = itertools.count()
        self._changed = threading.Condition()

    def join(self) -> Ticket:
        with self._changed:
            if len(self._tickets) >= self.slots + self.max_waiting:
                raise QueueFull(
                    f"the server is busy: {len(self._tickets) - self.slots} runs are waiting already; "
                    "try again in a few minutes"
                )
            ticket = Ticket(self, next(self._numbers))
            self._tickets.append(ticket)
            return ticket

    def _ahead(self, ticket: Ticket) -> int:
        with self._changed:
            return self._tickets.index(ticket) if ticket in self._tickets else 0

    def _leave(self, ticket: Ticket) -> None:
        with self._changed:
            if ticket in self._tickets:
                self._tickets.remove(ticket)
            self._changed.notify_all()

    def __len__(self) -> int:
        return len(self._tickets)
