"""People's contacts, read from signing when an email is written: the notifier stores none.

The event log carries no one's name or address (docs/personal-data.md); signing holds them, and
erasure there is the end of them. These calls use signing's internal API with
GROUNDSWELL_INTERNAL_TOKEN."""

from datetime import datetime

import httpx
from pydantic import TypeAdapter

from services.notifier.settings import NotifierSettings
from contract.internal_api import (Confirmation, Confirmations, DecisionMakerLink, DecisionMakerLinks, OrganizerContact,
                                   Recipient, Recipients, Response, SignInLink, SignInLinks, UpdateText)

__all__ = ["Confirmation", "Contacts", "Organizer", "PetitionUnknown", "Recipient", "Recipients", "SignInLink",
           "UpdateText"]


class Organizer(OrganizerContact):
    @property
    def first_name(self) -> str:
        return self.name.split()[0] if self.name.strip() else "The organizer"


_CONFIRMATIONS = TypeAdapter(Confirmations)  # the whole answer validated in one call (pydantic-core)
_SIGN_IN_LINKS = TypeAdapter(SignInLinks)
_DECISION_MAKER_LINKS = TypeAdapter(DecisionMakerLinks)


class PetitionUnknown(Exception):
    """Signing does not know the petition (yet): try again later."""


class Contacts:
    def __init__(self, settings: NotifierSettings, http: httpx.AsyncClient | None = None) -> None:
        self.base = settings.signing_url.rstrip("/")
        self.counter = settings.counter_url.rstrip("/")
        self.headers = {"Authorization": f"Bearer {settings.internal_token or ''}"}
        self.http = http or httpx.AsyncClient(timeout=30)

    async def organizer(self, petition_id: str) -> Organizer | None:
        """The organizer's name and address; None when they were erased (write to no one)."""
        response = await self.http.get(f"{self.base}/internal/petitions/{petition_id}/organizer",
                                       headers=self.headers)
        if response.status_code == 410:
            return None
        if response.status_code == 404:
            raise PetitionUnknown(petition_id)
        response.raise_for_status()
        return Organizer.model_validate(response.json())

    async def recipients(self, petition_id: str, signed_before: datetime, after: str, limit: int) -> Recipients:
        """One page of the supporters who opted in, in signature-id order."""
        response = await self.http.get(
            f"{self.base}/internal/petitions/{petition_id}/recipients",
            params={"signed_before": signed_before.isoformat(), "after": after, "limit": limit},
            headers=self.headers,
        )
        response.raise_for_status()
        return Recipients.model_validate(response.json())

    async def confirmations(self, signature_ids: list[str]) -> dict[str, Confirmation]:
        """Who to send a confirmation link to, by signature id: only signatures still pending."""
        response = await self.http.post(f"{self.base}/internal/confirmations",
                                        json={"signature_ids": signature_ids}, headers=self.headers)
        response.raise_for_status()
        return {c.signature_id: c for c in _CONFIRMATIONS.validate_json(response.content).confirmations}

    async def sign_in_links(self, link_ids: list[str]) -> dict[str, SignInLink]:
        """The organizer's contact and sign-in link, by link id: only links still worth sending."""
        response = await self.http.post(f"{self.base}/internal/sign-in-links", json={"link_ids": link_ids},
                                        headers=self.headers)
        response.raise_for_status()
        return {link.link_id: link for link in _SIGN_IN_LINKS.validate_json(response.content).links}

    async def update(self, petition_id: str, number: int) -> UpdateText:
        """An organizer's update to supporters: its subject and text."""
        response = await self.http.get(f"{self.base}/internal/petitions/{petition_id}/updates/{number}",
                                       headers=self.headers)
        response.raise_for_status()
        return UpdateText.model_validate_json(response.content)

    async def decision_maker_links(self, link_ids: list[str]) -> dict[str, DecisionMakerLink]:
        """The decision maker's address and links, by link id: only links still worth sending."""
        response = await self.http.post(f"{self.base}/internal/decision-maker-links", json={"link_ids": link_ids},
                                        headers=self.headers)
        response.raise_for_status()
        return {link.link_id: link for link in _DECISION_MAKER_LINKS.validate_json(response.content).links}

    async def response(self, petition_id: str, threshold: int) -> Response:
        """A decision maker's published response."""
        response = await self.http.get(f"{self.base}/internal/petitions/{petition_id}/responses/{threshold}",
                                       headers=self.headers)
        response.raise_for_status()
        return Response.model_validate_json(response.content)

    async def figures(self, petition_id: str) -> dict:
        """The petition's public figures from the counter: count, countries, signatures per day."""
        response = await self.http.get(f"{self.counter}/petitions/{petition_id}/stats", params={"bucket": "day"})
        response.raise_for_status()
        return response.json()

    async def close(self) -> None:
        await self.http.aclose()
