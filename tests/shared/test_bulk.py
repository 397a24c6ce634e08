"""Insert-only rows written in bulk (`shared.bulk`): seen by the transaction's queries, gone with its rollback."""

from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest
from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlmodel import Session, col, select

from shared import bulk, db
from tests.shared.tables import SCHEMA, Document, Effect, TestOutbox, TestProcessedEvent


@pytest.fixture
def engine(either_engine: Engine) -> Engine:
    return either_engine


def test_rows_are_seen_by_the_next_query_and_keep_their_order(engine: Engine) -> None:
    with db.transaction(engine) as session:
        for n in range(2500):  # more than one INSERT page
            session.add_row(TestOutbox, event_id=f"e{n}", topic="t", key=f"k{n % 7}", payload=str(n))
        # Read back inside the same transaction: the rows are written before the query runs.
        seen = session.exec(select(TestOutbox).order_by(col(TestOutbox.id))).all()
        assert [row.payload for row in seen] == [str(n) for n in range(2500)]
        assert all(row.created_at is not None for row in seen)  # the model default
    with Session(engine) as session:
        assert len(session.exec(select(TestOutbox.id)).all()) == 2500


def test_rows_are_written_at_commit_and_dropped_on_rollback(engine: Engine) -> None:
    with db.transaction(engine) as session:
        session.add_row(Effect, event_id="kept", case_id="c1")
    with pytest.raises(RuntimeError), db.transaction(engine) as session:
        session.add_row(Effect, event_id="lost", case_id="c2")
        raise RuntimeError("the transaction fails")
    with Session(engine) as session:
        assert session.exec(select(Effect.event_id)).all() == ["kept"]


def test_rows_of_different_shapes_go_to_one_table(engine: Engine) -> None:
    with db.transaction(engine) as session:
        session.add_row(TestOutbox, event_id="a", topic="t", key="k", payload="1")
        session.add_row(
            TestOutbox,
            event_id="b",
            topic="t",
            key="k",
            payload="2",
            created_at=datetime(2026, 1, 1, tzinfo=UTC),
        )
        session.add(Effect(event_id="orm", case_id="c"))  # an ORM object in the same transaction
    with Session(engine) as session:
        assert session.exec(select(TestOutbox.event_id).order_by(col(TestOutbox.id))).all() == ["a", "b"]
        assert session.exec(select(Effect.event_id)).all() == ["orm"]


def test_a_draft_is_inserted_at_commit_with_the_values_it_has_then(engine: Engine) -> None:
    with db.transaction(engine) as session:
        draft = session.add_draft(Effect, event_id="e1", case_id="first")
        session.add_row(Effect, event_id="e2", case_id="row")
        # A query on the same table inserts the plain rows first, but the draft stays open to change.
        assert session.exec(select(Effect.event_id)).all() == ["e2"]
        draft.case_id = "changed later"
        assert draft.case_id == "changed later"
        with pytest.raises(AttributeError):
            draft.no_such_field = 1
        with pytest.raises(AttributeError):
            _ = draft.id  # the autoincrement id: the database numbers the row when it is inserted
    with Session(engine) as session:
        rows = session.exec(select(Effect.event_id, Effect.case_id).order_by(col(Effect.event_id))).all()
    assert [tuple(r) for r in rows] == [("e1", "changed later"), ("e2", "row")]


def test_a_draft_is_dropped_on_rollback(engine: Engine) -> None:
    with pytest.raises(RuntimeError), db.transaction(engine) as session:
        session.add_draft(Effect, event_id="lost", case_id="c")
        raise RuntimeError("the transaction fails")
    with db.transaction(engine) as session:
        session.add_draft(Effect, event_id="kept", case_id="c")
    with Session(engine) as session:
        assert session.exec(select(Effect.event_id)).all() == ["kept"]


@pytest.mark.parametrize("more", [0, bulk.COPY_FROM_ROWS], ids=["insert", "copy"])
def test_a_broken_rule_among_the_rows_is_an_integrity_error_and_nothing_of_the_transaction_stays(
    engine: Engine, more: int
) -> None:
    with db.transaction(engine) as session:
        session.add_row(TestProcessedEvent, consumer="c", event_id="seen")
    # On PostgreSQL the rows go out in one pipeline, or by COPY, and the failure comes back at the
    # end; the last row breaks the primary key, so nothing is raised before that end.
    with pytest.raises(IntegrityError), db.transaction(engine) as session:
        for n in range(1 + more):
            session.add_row(Effect, event_id=f"lost{n}", case_id="c")
        session.add_row(TestOutbox, event_id="lost", topic="t", key="k", payload="1")
        session.add_row(TestProcessedEvent, consumer="c", event_id="seen")
    with db.transaction(engine) as session:  # the engine's connections are usable again
        session.add_row(Effect, event_id="after", case_id="c")
    with Session(engine) as session:
        assert session.exec(select(Effect.event_id)).all() == ["after"]
        assert session.exec(select(TestOutbox.event_id)).all() == []


def test_the_rows_of_all_tables_share_one_pipeline(postgres_engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    entered: list[object] = []
    real_pipeline = psycopg.Connection.pipeline

    def counting_pipeline(self: psycopg.Connection[Any]) -> Any:
        entered.append(self)
        return real_pipeline(self)

    monkeypatch.setattr(psycopg.Connection, "pipeline", counting_pipeline)
    with db.transaction(postgres_engine) as session:
        session.add_row(Effect, event_id="e1", case_id="c")
        session.add_row(Effect, event_id="e2", case_id="c")
        session.add_row(TestOutbox, event_id="a", topic="t", key="k", payload="1")
        session.add_row(TestOutbox, event_id="b", topic="t", key="k", payload="2")
        session.add_row(TestProcessedEvent, consumer="c", event_id="e1")
    # Once for the three tables: each executemany of two rows joins it instead of opening its own.
    assert len(entered) == 1
    with Session(postgres_engine) as reading:
        assert len(reading.exec(select(TestOutbox.event_id)).all()) == 2


@pytest.mark.parametrize("rows", [1, bulk.COPY_FROM_ROWS], ids=["insert", "copy"])
def test_a_connection_lost_under_the_rows_is_a_transient_error_and_the_pool_recovers(
    postgres_engine: Engine, rows: int
) -> None:
    engine = postgres_engine
    with pytest.raises(DBAPIError) as failed, db.transaction(engine) as session:
        pid = session.connection().exec_driver_sql("SELECT pg_backend_pid()").scalar_one()
        with engine.connect() as other:
            other.exec_driver_sql(f"SELECT pg_terminate_backend({int(pid)})")
        for n in range(rows):
            session.add_row(Effect, event_id=f"lost{n}", case_id="c")
    assert db.is_transient(failed.value)
    with db.transaction(engine) as session:
        session.add_row(Effect, event_id="after", case_id="c")
    with Session(engine) as session:
        assert session.exec(select(Effect.event_id)).all() == ["after"]


def _documents(n: int) -> list[dict[str, Any]]:
    at = datetime(2026, 12, 4, 9, 30, tzinfo=UTC)
    return [
        {
            "body": {"n": n, "名前": "相談", "items": [1, None]},
            "at": at.replace(minute=n % 60),
            "note": None if n % 3 else f"#{n}",
        }
        for n in range(n)
    ]


def test_many_rows_go_by_copy_and_read_back_as_rows_inserted_one_by_one(
    postgres_engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    copies: list[str] = []
    real_copy = psycopg.Cursor.copy

    def counting_copy(self: psycopg.Cursor[Any], statement: Any, *args: Any, **kwargs: Any) -> Any:
        copies.append(str(statement))
        return real_copy(self, statement, *args, **kwargs)

    monkeypatch.setattr(psycopg.Cursor, "copy", counting_copy)
    documents = _documents(2 * bulk.COPY_FROM_ROWS)
    with db.transaction(postgres_engine) as session:
        for values in documents:
            session.add_row(Document, **values)
        session.add_row(TestOutbox, event_id="e", topic="t", key="k", payload="1")
    # One COPY per table and shape: documents with and without a note are one shape (the key is given).
    assert [statement.split(" (")[0] for statement in copies] == [f"COPY {SCHEMA}.document", f"COPY {SCHEMA}.outbox"]
    for values in documents:  # the same rows again, a transaction each: INSERT statements
        with db.transaction(postgres_engine) as session:
            session.add_row(Document, **values)
    assert len(copies) == 2
    with Session(postgres_engine) as reading:
        rows = [(d.body, d.at, d.note) for d in reading.exec(select(Document).order_by(col(Document.id)))]
    by_copy, by_insert = rows[: len(documents)], rows[len(documents) :]
    assert by_copy == by_insert == [(d["body"], d["at"], d["note"]) for d in documents]
