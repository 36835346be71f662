"""The use cases with plain fakes (issue 23): signing a petition, the projection's fold, the
notifier's reactions, the supporter fan-out. No database, broker or SMTP server: what each decides,
given what its collaborators answer. The same paths run against the real ones in tests/integration
and tests/e2e."""

import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from types import SimpleNamespace

import pytest

from contract.events import (ConfirmationRequested, MilestoneReached, PetitionCreated, SignatureAdded,
                             SignatureInvalidated, encode_event)
from contract.internal_api import Recipient, Recipients
from services.counter.projection import Delivered, counted as counting_view, fold
from services.notifier.delivery import Outcome
from services.notifier.fanout import FanOut
from services.notifier.service import REACTIONS, notify
from services.notifier.settings import NotifierSettings
from services.signing.domain import mailbox_key
from services.signing.schemas import SignatureIn
from services.signing.service import PetitionNotFound, PetitionNotOpen, Signing
from services.signing.settings import SigningSettings
from tests.harness import until

PETITION = str(uuid.uuid4())
OTHER = str(uuid.uuid4())


# --- signing a petition ---------------------------------------------------------------------------

class FakeWrite:
    """The unit of work: records what it is handed, answers as the group committer would."""

    sessions = None
    committer = SimpleNamespace(engine="sqlite")  # picks the store adapter

    def __init__(self, outcome: str = "new") -> None:
        self.outcome = outcome
        self.units: list = []

    async def grouped(self, writer, unit):
        self.units.append((writer, unit))
        return self.outcome


class FakePetitions:
    def __init__(self, **rows) -> None:
        self.rows = rows

    async def get(self, ref: str):
        return self.rows.get(ref)


def signing(write: FakeWrite, **rows) -> Signing:
    return Signing(write, FakePetitions(**rows), SigningSettings())


async def test_a_signature_goes_to_the_unit_of_work_with_its_mailbox_key_and_nothing_else_happens():
    write = FakeWrite()
    service = signing(write, park=SimpleNamespace(id=PETITION, status="open"))
    body = SignatureIn(name="Ada Lovelace", email="Ada.Lovelace+x@Example.org", country="GB", updates=True)
    assert await service.sign("park", body, "req-1", client="203.0.113.9") == "new"
    [(writer, unit)] = write.units
    assert writer is service.signature_writer
    assert (unit.petition_id, unit.name, unit.email, unit.country, unit.updates, unit.correlation_id) == (
        PETITION, "Ada Lovelace", body.email, "GB", True, "req-1")
    assert unit.mailbox_key == mailbox_key(SigningSettings().mailbox_secret(), "ada.lovelace@example.org")
    assert unit.client_key and "203.0.113.9" not in unit.client_key
    assert unit.held_reason is None


async def test_a_throwaway_mailbox_is_held_and_the_answer_is_the_same():
    write = FakeWrite(outcome="held")
    service = signing(write, park=SimpleNamespace(id=PETITION, status="open"))
    assert await service.sign("park", SignatureIn(name="Bo", email="bo@mailinator.com")) == "held"
    assert write.units[0][1].held_reason == "disposable"


@pytest.mark.parametrize("status, error", [("closed", PetitionNotOpen), ("won", PetitionNotOpen),
                                           ("unconfirmed", PetitionNotFound), ("in_review", PetitionNotFound),
                                           ("rejected", PetitionNotFound)])
async def test_no_signature_for_a_petition_that_is_not_open(status, error):
    write = FakeWrite()
    service = signing(write, park=SimpleNamespace(id=PETITION, status=status))
    with pytest.raises(error):
        await service.sign("park", SignatureIn(name="Cy", email="cy@example.org"))
    with pytest.raises(PetitionNotFound):
        await service.sign("nowhere", SignatureIn(name="Cy", email="cy@example.org"))
    assert write.units == []


# --- the projection's fold ------------------------------------------------------------------------

def counted(event) -> Delivered:
    return Delivered(counting_view(encode_event(event)), 1)


def test_the_fold_counts_each_fresh_event_once_and_moves_status_country_and_hour():
    at = datetime(2026, 12, 7, 10, 30, tzinfo=timezone.utc)
    created = counted(PetitionCreated(petition_id=PETITION, title="Park", slug="park", target="Council"))
    a = counted(SignatureAdded(petition_id=PETITION, signature_id=uuid.uuid4(), country="GB", occurred_at=at))
    b = counted(SignatureAdded(petition_id=PETITION, signature_id=uuid.uuid4(), occurred_at=at))
    old = counted(SignatureAdded(petition_id=OTHER, signature_id=uuid.uuid4(), country="FR", occurred_at=at))
    gone = counted(SignatureInvalidated(petition_id=PETITION, signature_id=uuid.uuid4(), moderation_id=uuid.uuid4(),
                                        country="GB", counted_at=at))
    batch = [created, a, a, b, old, gone]  # `a` twice in one batch; `old` counted before (not fresh)
    change = fold(batch, {item.event_id for item in (created, a, b, gone)})
    hour = int(at.timestamp()) // 3600
    assert change.created == {PETITION: "park"} and change.owners == {"park": PETITION}
    assert {pid: len(events) for pid, events in change.signed.items()} == {PETITION: 2}
    assert dict(change.invalidated) == {PETITION: 1}
    assert change.statuses == {PETITION: "open"}
    assert dict(change.by_country) == {(PETITION, "GB"): 0, (PETITION, ""): 1}
    assert dict(change.by_hour) == {(PETITION, hour): 1}


def test_nothing_fresh_folds_to_nothing():
    a = counted(SignatureAdded(petition_id=PETITION, signature_id=uuid.uuid4()))
    change = fold([a, a], set())
    assert (change.signed, change.invalidated, change.statuses, change.by_hour) == ({}, {}, {}, {})


# --- the notifier's reactions ---------------------------------------------------------------------

@dataclass
class FakeMsg:
    data: bytes
    delivered: int = 1
    outcome: list = field(default_factory=list)

    @property
    def metadata(self):
        return SimpleNamespace(num_delivered=self.delivered, num_pending=0, sequence=SimpleNamespace(stream=1))

    async def ack(self) -> None:
        self.outcome.append("ack")

    async def nak(self, delay: float) -> None:
        self.outcome.append(("nak", delay))


class FakeNotifier:
    settings = SimpleNamespace(dead_letter_after=5)

    def __init__(self, later: set | None = None) -> None:
        self.calls: list = []
        self.later = later or set()

    def retry_delay(self, deliveries: int) -> float:
        return 7.0 * deliveries

    async def remember_petition(self, event) -> None:
        self.calls.append(("remember", str(event.petition_id)))

    async def send_milestone_email(self, event, deliveries: int):
        self.calls.append(("milestone", event.milestone))
        return None

    async def send_confirmations(self, events, deliveries: int) -> set:
        self.calls.append(("confirm", sorted(str(e.signature_id) for e in events)))
        return {e.event_id for e in events if str(e.signature_id) in self.later}


class FakeDeadLetters:
    def __init__(self) -> None:
        self.buried: list = []

    async def bury(self, msg, reason: str) -> None:
        self.buried.append(reason)


async def test_reactions_send_a_batchs_confirmations_together_and_ack_each_event_by_its_outcome():
    first, second = uuid.uuid4(), uuid.uuid4()
    messages = [
        FakeMsg(encode_event(PetitionCreated(petition_id=PETITION, title="Park", slug="park", target="Council"))),
        FakeMsg(encode_event(ConfirmationRequested(petition_id=PETITION, signature_id=first))),
        FakeMsg(encode_event(MilestoneReached(petition_id=PETITION, milestone=10, count=10, next_goal=100))),
        FakeMsg(encode_event(ConfirmationRequested(petition_id=PETITION, signature_id=second)), delivered=2),
        FakeMsg(b"{not json"),
        FakeMsg(encode_event(SignatureAdded(petition_id=PETITION, signature_id=uuid.uuid4()))),  # not the notifier's
    ]
    notifier, dead = FakeNotifier(later={str(second)}), FakeDeadLetters()
    await notify(notifier, dead)([REACTIONS.read(m) for m in messages])
    await until(lambda: all(m.outcome for m in messages[:4]) and len(dead.buried) == 2)
    assert notifier.calls == [("remember", PETITION), ("milestone", 10), ("confirm", sorted([str(first), str(second)]))]
    assert [m.outcome for m in messages[:4]] == [["ack"], ["ack"], ["ack"], [("nak", 14.0)]]
    assert messages[4].outcome == messages[5].outcome == []  # set aside, not acked here (DeadLetters terminates)
    assert [reason.split(":")[0] for reason in dead.buried] == ["undecodable", "undecodable"]


async def test_a_reaction_that_fails_comes_back_later_and_a_lasting_failure_becomes_a_dead_letter():
    class Failing(FakeNotifier):
        async def send_milestone_email(self, event, deliveries):
            raise ValueError("the template is broken")

    milestone = MilestoneReached(petition_id=PETITION, milestone=25, count=25, next_goal=100)
    early, late = FakeMsg(encode_event(milestone), delivered=1), FakeMsg(encode_event(milestone), delivered=5)
    dead = FakeDeadLetters()
    handle = notify(Failing(), dead)
    await handle([REACTIONS.read(early)])
    await handle([REACTIONS.read(late)])
    await until(lambda: early.outcome and dead.buried)
    assert early.outcome == [("nak", 7.0)] and late.outcome == []
    assert dead.buried == ["ValueError: the template is broken"]


# --- the supporter fan-out ------------------------------------------------------------------------

class FakeContacts:
    def __init__(self, pages: dict[str, Recipients]) -> None:
        self.pages = pages
        self.asked: list[str] = []

    async def organizer(self, petition_id):
        return None

    async def recipients(self, petition_id, signed_before, after, limit):
        self.asked.append(after)
        return self.pages[after]


class FakePipeline:
    """Sends everything, except that each recipient in `defer` is refused once (a 4xx)."""

    def __init__(self, defer: set[str]) -> None:
        self.defer = set(defer)
        self.sent: list[str] = []

    async def send(self, petition_id, topic, items, *, kind, bulk, after_chunk):
        outcome = Outcome()
        for item in items:
            if item.recipient in self.defer:
                self.defer.discard(item.recipient)
                outcome.retry.add(item.recipient)
            else:
                self.sent.append(item.recipient)
                outcome.sent.add(item.recipient)
        return outcome


class LeaseInMemory(FanOut):
    """The fan-out with its row kept here instead of in the notifier's database."""

    def __init__(self, contacts, pipeline) -> None:
        super().__init__(None, NotifierSettings(retry_base_s=0.01, retry_max_s=0.02), contacts, pipeline)
        self.saved: list[dict] = []

    async def _petition(self, petition_id):
        return SimpleNamespace(petition_id=petition_id, title="Park", slug="park")

    async def _renew(self, token, row, **values) -> None:
        self.saved.append(values)


def recipient(n: int) -> Recipient:
    return Recipient(signature_id=f"s{n}", name=f"Supporter {n}", email=f"s{n}@example.org",
                     unsubscribe_url=f"http://x/u/{n}")


async def test_a_fan_out_sends_each_supporter_once_and_moves_its_cursor_only_past_a_page_fully_sent():
    pages = {"": Recipients(recipients=[recipient(1), recipient(2)], next="s2"),
             "s2": Recipients(recipients=[recipient(3)], next=None)}
    contacts, pipeline = FakeContacts(pages), FakePipeline(defer={"s2"})
    fanout = LeaseInMemory(contacts, pipeline)
    row = SimpleNamespace(petition_id=PETITION, milestone=100, cursor="", count=100, next_goal=200,
                          signed_before=datetime.now(timezone.utc), correlation_id="req-9")
    await fanout._work("token", row)
    assert pipeline.sent == ["s1", "s2", "s3"]  # s2 after its retry, each once
    assert contacts.asked == ["", "s2"]
    cursors = [values.get("cursor") for values in fanout.saved]
    assert cursors == [None, "s2", "s3"]  # renewed while s2 waited; past page one only once s2 went
    assert fanout.saved[-1]["done_at"] is not None and fanout.saved[-1]["claimed_until_s"] is None


async def test_a_fan_out_resumes_at_its_cursor():
    pages = {"s2": Recipients(recipients=[recipient(3)], next=None)}
    contacts, pipeline = FakeContacts(pages), FakePipeline(defer=set())
    row = SimpleNamespace(petition_id=PETITION, milestone=200, cursor="s2", count=200, next_goal=500,
                          signed_before=datetime.now(timezone.utc), correlation_id=None)
    await LeaseInMemory(contacts, pipeline)._work("token", row)
    assert (contacts.asked, pipeline.sent) == (["s2"], ["s3"])
