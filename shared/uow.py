"""The unit of work: one transaction's session, and what the work has written and decided so far.

A consumer batch or a request runs in one `UnitOfWork` (opened by `db.transaction`). Besides being the
session, it holds the transaction's insert-only rows until they are written in bulk (`shared.bulk`),
and the hooks to run just before its commit. A service whose work keeps more for one transaction (the
router's decisions of the batch, metrics' facts read up front) declares a subclass with those as typed
attributes, and its domain functions take that subclass: a reader follows a decision from the event to
the rows it writes through one object.

Everything held ends with the transaction: after a commit, a rollback or the session's close, the next
transaction of the same session starts afresh (`reset`), so rows or decisions of a rolled-back
transaction never reach a later commit.

When the rows are written: before the session's next ORM statement on one of their tables (so a query
in the same transaction sees them; a statement on no mapped table counts as one on all), at
`flush_rows`, or when the transaction commits. A statement sent with `connection()` directly does not
write them first. Drafts (`add_draft`) wait for the commit whatever runs before it.
"""

from collections.abc import Callable
from typing import Any, Self

from sqlalchemy import Table, event
from sqlalchemy.orm import ORMExecuteState, SessionTransaction
from sqlmodel import Session, SQLModel

from shared import bulk

Row = tuple[Table, dict[str, Any]]


class UnitOfWork(Session):
    """One transaction's session, with its rows waiting to be written and its before-commit hooks."""

    rows: list[Row]
    # The tables of `rows`: a statement looks here (not through every waiting row) for whether it reads one.
    row_tables: set[Table]
    drafts: list[Row]
    hooks: list[Callable[[Any], None]]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.reset()

    def reset(self) -> None:
        """Forget what the transaction held; called when it ends. Subclasses extend it to clear their own."""
        self.rows = []
        self.row_tables = set()
        self.drafts = []
        self.hooks = []

    def add_row(self, model: type[SQLModel], **values: Any) -> dict[str, Any]:
        """Insert a row of `model` in this transaction; fields left out take their model defaults.

        Returns the row's values as they will be inserted (the defaults filled in); treat them as read-only.
        """
        if self.get_transaction() is None:
            self.begin()  # the row belongs to a transaction, and goes with its rollback
        row = bulk.filled(model, values)
        table = model.__table__  # type: ignore[attr-defined]
        self.rows.append((table, row))
        self.row_tables.add(table)
        return row

    def add_draft(self, model: type[SQLModel], **values: Any) -> bulk.Draft:
        """A new row of `model`, inserted when the transaction commits; until then its fields may change.

        Unlike `add_row`'s rows a draft waits for the commit whatever the transaction runs before it, so
        a query in the same transaction does not see it.
        """
        if self.get_transaction() is None:
            self.begin()
        row = bulk.filled(model, values)
        self.drafts.append((model.__table__, row))  # type: ignore[attr-defined]
        return bulk.Draft(row)

    def flush_rows(self) -> None:
        """Insert the rows added so far (they are also inserted before the next ORM statement and at commit)."""
        if not self.rows:
            return
        rows, self.rows = self.rows, []
        self.row_tables = set()
        bulk.write_rows(self, rows)

    def before_commit(self, hook: Callable[[Self], None]) -> None:
        """Run `hook(self)` just before this transaction commits (once, however often it is asked for).

        Hooks run after the waiting rows and drafts are written, in the order they were first asked for;
        rows they add are written before the commit too.
        """
        if hook not in self.hooks:
            self.hooks.append(hook)


def unit_of(session: Session) -> UnitOfWork:
    """`session` as the unit of work it is (every `db.transaction` opens one); TypeError for a plain session."""
    if not isinstance(session, UnitOfWork):
        raise TypeError(f"{type(session).__name__} is not a unit of work: open it with db.transaction")
    return session


@event.listens_for(UnitOfWork, "do_orm_execute")
def _before_statement(state: ORMExecuteState) -> None:
    unit = state.session
    assert isinstance(unit, UnitOfWork)
    if not unit.rows:
        return
    mappers = state.all_mappers
    if mappers and not any(m.local_table in unit.row_tables for m in mappers):
        return  # the statement reads none of the tables with rows waiting: they wait for the commit
    unit.flush_rows()


@event.listens_for(UnitOfWork, "before_commit")
def _before_commit(unit: UnitOfWork) -> None:
    unit.flush_rows()
    if unit.drafts:
        drafts, unit.drafts = unit.drafts, []
        bulk.write_rows(unit, drafts)
    for hook in list(unit.hooks):
        hook(unit)
    unit.flush_rows()  # the commit has begun: rows a hook added would otherwise wait for a statement


@event.listens_for(UnitOfWork, "after_transaction_end")
def _after_transaction(unit: UnitOfWork, transaction: SessionTransaction) -> None:
    if transaction.parent is None:  # the transaction itself, not a savepoint inside it
        unit.reset()
