"""State kept per transaction (shared.db.TransactionState) ends with its transaction."""

from pathlib import Path

from sqlalchemy import text
from sqlmodel import Session, create_engine

from shared.db import TransactionState


def test_state_lives_as_long_as_its_transaction(tmp_path: Path) -> None:
    state: TransactionState[list[str]] = TransactionState("test_state", list)
    engine = create_engine(f"sqlite:///{tmp_path / 'state.db'}")
    with Session(engine) as session:
        assert state.peek(session) is None and not session.in_transaction(), "peek begins no transaction"
        first = session.begin()
        state.get(session).append("rolled back")
        assert state.peek(session) == ["rolled back"]
        first.rollback()
        assert state.peek(session) is None, "a rolled-back transaction's state is gone"
        with session.begin():
            assert state.get(session) == [], "the next transaction starts afresh"
            state.get(session).append("committed")
            session.execute(text("SELECT 1"))
            assert state.peek(session) == ["committed"], "the same transaction keeps its state"
        assert state.peek(session) is None, "a committed transaction's state is gone"
        state.get(session).append("autobegun")
        assert session.in_transaction(), "get begins a transaction when there is none"
        state.discard(session)
        assert state.peek(session) is None
    engine.dispose()
