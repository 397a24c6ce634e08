"""A unit of work (shared.uow.UnitOfWork) holds one transaction's rows and hooks, and they end with it."""

from sqlalchemy import Engine, text
from sqlmodel import Session, select

from shared import db
from shared.uow import UnitOfWork
from tests.shared.tables import Effect


class CountingBatch(UnitOfWork):
    """A unit of work with state of its own, as a service declares one."""

    seen: list[str]

    def reset(self) -> None:
        super().reset()
        self.seen = []


def test_state_is_fresh_after_a_commit_and_after_a_rollback(either_engine: Engine) -> None:
    engine = either_engine
    with CountingBatch(engine) as unit:
        first = unit.begin()
        unit.seen.append("rolled back")
        unit.add_row(Effect, event_id="lost", case_id="c")
        unit.add_draft(Effect, event_id="lost draft", case_id="c")
        unit.before_commit(lambda batch: batch.seen.append("hook"))
        first.rollback()
        assert (unit.seen, unit.rows, unit.drafts, unit.hooks) == ([], [], [], []), "a rollback's state is gone"
        with unit.begin():
            assert unit.seen == [], "the next transaction starts afresh"
            unit.seen.append("committed")
            unit.add_row(Effect, event_id="kept", case_id="c")
            unit.execute(text("SELECT 1"))
            assert unit.seen == ["committed"], "the same transaction keeps its state"
        assert (unit.seen, unit.rows, unit.drafts, unit.hooks) == ([], [], [], []), "a commit's state is gone"
        unit.add_row(Effect, event_id="autobegun", case_id="c")
        assert unit.in_transaction(), "a row begins a transaction when there is none"
        unit.rollback()
        assert unit.rows == []
    with Session(engine) as session:
        assert session.exec(select(Effect.event_id)).all() == ["kept"], "a rolled-back transaction's rows never land"


def test_a_before_commit_hook_runs_once_after_the_rows_are_written(either_engine: Engine) -> None:
    engine = either_engine
    calls: list[list[str]] = []

    def hook(batch: CountingBatch) -> None:
        calls.append(list(batch.exec(select(Effect.event_id)).all()))
        batch.add_row(Effect, event_id="from the hook", case_id="c")

    with db.transaction(engine, CountingBatch) as unit:
        unit.add_row(Effect, event_id="row", case_id="c")
        unit.before_commit(hook)
        unit.before_commit(hook)  # asked for twice in one transaction: runs once
    assert calls == [["row"]], "the hook ran once and saw the transaction's rows"
    with db.transaction(engine, CountingBatch) as unit:
        unit.add_row(Effect, event_id="next", case_id="c")
    assert len(calls) == 1, "a hook belongs to its transaction only"
    with Session(engine) as session:
        assert sorted(session.exec(select(Effect.event_id)).all()) == ["from the hook", "next", "row"]
