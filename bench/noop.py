"""The do-nothing reference: FastAPI on uvicorn (uvloop, httptools) that validates the same
signature body and answers, and a GET with a count-sized JSON body. Every figure is also given as
a ratio to these, measured in the same run."""

from fastapi import FastAPI

from services.signing.schemas import Accepted, SignatureIn

app = FastAPI(title="do-nothing reference")
COUNT = {"petition_id": "00000000-0000-4000-8000-000000000000", "count": 12345, "goal": 20000,
         "updated_at": "2026-11-24T00:00:00.000000Z"}


@app.post("/petitions/{ref}/signatures", status_code=202)
async def sign(ref: str, body: SignatureIn) -> Accepted:
    """Validate the body as signing does, then nothing."""
    return Accepted()


@app.get("/petitions/{ref}/count")
async def count(ref: str) -> dict:
    """A constant count document."""
    return COUNT
