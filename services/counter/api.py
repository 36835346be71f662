"""The count API the public site reads."""

from datetime import datetime
from uuid import UUID

from fastapi import APIRouter, HTTPException, Request
from pydantic import BaseModel
from sqlalchemy import select

from services.counter.db import petition_counts
from shared.milestones import next_goal

router = APIRouter()


class Count(BaseModel):
    petition_id: UUID
    count: int
    goal: int
    updated_at: datetime


@router.get("/petitions/{ref}/count", responses={404: {"description": "Unknown petition"}})
async def get_count(ref: str, request: Request) -> Count:
    """A petition's exact supporter count and its current public goal, by petition id or slug."""
    try:
        condition = petition_counts.c.petition_id == str(UUID(ref))
    except ValueError:
        condition = petition_counts.c.slug == ref.lower()
    async with request.app.state.runtime.sessions() as session:
        row = (await session.execute(select(petition_counts).where(condition))).first()
    if row is None:
        raise HTTPException(404, f"No petition '{ref}' is known to the counter.")
    return Count(petition_id=row.petition_id, count=row.count, goal=next_goal(row.count), updated_at=row.updated_at)
