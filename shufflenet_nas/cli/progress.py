"""One progress helper for every command: a Rich bar on a terminal, plain lines elsewhere."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.progress import Progress


from shufflenet_nas.cli.console import err


class ProgressBar:
    """Progress of one task on stderr: a Rich bar on a terminal, else a line whenever what it says changes."""

    def __init__(self, description: str, total: int | None, bar: Progress | None) -> None:
        self.description, self.total, self.done, self.status = description, total, 0, ""
        self._bar = bar
        self._task = bar.add_task(description, total=total, status="") if bar is not None else None
        self._line = ""

    def update(
        self,
        done: int | None = None,
        *,
        advance: int = 0,
        total: int | None = None,
        description: str | None = None,
        status: str | None = None,
    ) -> None:
        self.done = (self.done if done is None else done) + advance
        self.total = self.total if total is None else total
        self.description = description or self.description
        self.status = self.status if status is None else status
        if self._bar is not None and self._task is not None:
            shown = {"completed": self.done, "total": self.total, "description": self.description}
            self._bar.update(self._task, **shown, status=self.status)
            return
        line = f"[{self.done}/{self.total if self.total is not None else '?'}] {self.description}"
        line += f" · {self.status}" if self.status else ""
        if line != self._line:
            err.print(line, highlight=False, markup=False)
            self._line = line

    def track(self, items: Iterable[Any], description: str) -> Iterator[Any]:
        """``items``, one by one, counted as they are handed out and done (the bar restarts at 0 of them)."""
        items = list(items)
        self.update(0, total=len(items), description=description)
        for item in items:
            yield item
            self.update(advance=1)


@contextmanager
def progress(description: str, total: int | None = None) -> Iterator[ProgressBar]:
    """A ``ProgressBar`` for the time of the ``with`` block (the bar stays on screen when it ends)."""
    if not err.is_terminal:
        yield ProgressBar(description, total, None)
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    columns = (
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[status]}"),
    )
    with Progress(*columns, console=err) as bar:
        yield ProgressBar(description, total, bar)
