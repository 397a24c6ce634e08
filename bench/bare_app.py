"""The intake baseline: a bare FastAPI endpoint on uvicorn that does a single INSERT per request.

Run as `uvicorn bench.bare_app:app`; `BENCH_DATABASE_URL` names the bench database. The engine has the
pool of the services (shared.db.make_engine: 5 + 10 overflow) and the endpoint runs in the thread pool
as intake's database work does.
"""

import contextlib
import json
import os
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI, status
from sqlalchemy import create_engine, text

from shared.ids import new_id
from shared.runtime import tune_collector
from shared.settings import Settings

_url = os.environ.get("BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
engine = create_engine(
    "postgresql+psycopg://" + _url.split("://", 1)[1], pool_pre_ping=True, pool_size=5, max_overflow=10
)


@contextlib.asynccontextmanager
async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
    tune_collector(Settings())  # the garbage collector as in intake's process
    with engine.begin() as conn:
        conn.execute(text("CREATE SCHEMA IF NOT EXISTS bench_bare"))
        conn.execute(text("CREATE TABLE IF NOT EXISTS bench_bare.consultation (id uuid PRIMARY KEY, body jsonb)"))
    yield
    engine.dispose()


app = FastAPI(lifespan=lifespan)


@app.get("/healthz")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@app.post("/v1/consultations", status_code=status.HTTP_202_ACCEPTED)
def submit(body: dict[str, Any]) -> dict[str, str]:
    case_id = new_id()
    with engine.begin() as conn:
        conn.execute(
            text("INSERT INTO bench_bare.consultation (id, body) VALUES (:id, CAST(:body AS jsonb))"),
            {"id": case_id, "body": json.dumps(body)},
        )
    return {"case_id": case_id}
