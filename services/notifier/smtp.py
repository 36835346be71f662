"""SMTP sending in two steps, so a crash cannot send a supporter email twice.

`stage` runs MAIL, RCPT and DATA and writes the message, all but the final "." line. The caller
then records the email as sent in its database, and `finish` writes the "." that asks the server
to take the message. A server discards a message whose DATA never ended, so a process killed
before `finish` sends nothing (and the ledger says "not sent" unless the commit came first).
The one gap left is a kill between the ledger commit and the next socket write, a few
microseconds long: that email is lost, never repeated.
"""

import asyncio
import re
from dataclasses import dataclass

import aiosmtplib

from services.notifier.emails import DkimSigner, Email
from services.notifier.settings import NotifierSettings

SMTP_ERRORS = (aiosmtplib.SMTPException, OSError, asyncio.TimeoutError)
_NOT_IN_ENVELOPE = re.compile(r"[\s<>]")


def envelope_address(address: str) -> bytes | None:
    """`<address>` for MAIL FROM or RCPT TO, or None when it cannot be sent as such (not ASCII, or
    with characters that could add a parameter or a command: aiosmtplib's check, without its
    per-command address parsing, which cost a tenth of the notifier's time)."""
    if not address.isascii() or _NOT_IN_ENVELOPE.search(address):
        return None
    return b"<" + address.encode("ascii") + b">"


class Rejected(Exception):
    """The server refused for good (5xx): retrying will not help."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(f"{code} {message}")
        self.code = code


class Deferred(Exception):
    """A temporary failure (4xx, timeout, connection lost): try again later."""


def classify(exc: BaseException) -> Exception:
    code = getattr(exc, "code", None)
    if isinstance(code, int) and 500 <= code < 600:
        return Rejected(code, str(getattr(exc, "message", exc)))
    return Deferred(f"{type(exc).__name__}: {exc}")


def wire_bytes(message: Email) -> bytes:
    """The message as DATA carries it: CRLF lines, leading dots doubled, no terminating '.'."""
    data = message.data
    if not data.endswith(b"\r\n"):
        data += b"\r\n"
    if data.startswith(b"."):
        data = b"." + data
    return data.replace(b"\n.", b"\n..")  # bytes.replace, in C: a regex took 26 us an email


@dataclass
class Staged:
    client: aiosmtplib.SMTP
    message: Email
    ended: bool = False  # the final '.' is written (end_data); finish() then only reads the answer


class SmtpPool:
    """Up to `size` open SMTP connections, reused from message to message."""

    def __init__(self, settings: NotifierSettings, dkim: DkimSigner | None = None) -> None:
        self.settings = settings
        self.dkim = dkim  # signs each message as it is sent, when a key is configured
        self._idle: list[aiosmtplib.SMTP] = []

    async def _connect(self) -> aiosmtplib.SMTP:
        s = self.settings
        client = aiosmtplib.SMTP(
            hostname=s.smtp_host, port=s.smtp_port, timeout=s.smtp_timeout_s, start_tls=s.smtp_starttls,
            username=s.smtp_username, password=s.smtp_password,
        )
        await client.connect()
        if client.is_ehlo_or_helo_needed:  # connect() greets only for STARTTLS or a login
            try:
                await client.ehlo()
            except aiosmtplib.SMTPHeloError:
                await client.helo()
        return client

    async def stage(self, message: Email) -> Staged:
        """Everything up to the final '.': raises Rejected or Deferred."""
        if self._idle:
            client = self._idle.pop()
            try:
                return await self._stage_on(client, message)
            except Deferred as exc:
                if not isinstance(exc.__cause__, (aiosmtplib.SMTPServerDisconnected, ConnectionError)):
                    raise
                # a kept connection the server has since closed: once more on a fresh one
        return await self._stage_on(None, message)

    async def _stage_on(self, client: aiosmtplib.SMTP | None, message: Email) -> Staged:
        # One deadline for the whole exchange; each command waits without its own timer (aiosmtplib
        # starts a task per timed wait: a tenth of the notifier's time at a thousand emails a second).
        try:
            async with asyncio.timeout(self.settings.smtp_timeout_s):
                if client is None or not client.is_connected:
                    client = await self._connect()
                sender = envelope_address(message.sender)
                if sender is None:
                    raise aiosmtplib.SMTPSenderRefused(553, "the sender address cannot be sent", "")
                response = await client.execute_command(b"MAIL", b"FROM:" + sender, timeout=None)
                if response.code != 250:
                    raise aiosmtplib.SMTPSenderRefused(response.code, response.message, "")
                for recipient in message.recipients:
                    if (quoted := envelope_address(recipient)) is None:
                        raise aiosmtplib.SMTPRecipientRefused(553, "the address is not ASCII or not an address", "")
                    response = await client.execute_command(b"RCPT", b"TO:" + quoted, timeout=None)
                    if response.code not in (250, 251):
                        raise aiosmtplib.SMTPRecipientRefused(response.code, response.message, "")
                response = await client.execute_command(b"DATA", timeout=None)
                if response.code != 354:
                    raise aiosmtplib.SMTPDataError(response.code, response.message)
                client.protocol.write(wire_bytes(self.dkim.sign(message) if self.dkim is not None else message))
        except SMTP_ERRORS as exc:
            self.discard(client)
            raise classify(exc) from exc
        return Staged(client, message)

    @staticmethod
    def end_data(staged: Staged) -> None:
        """Write the final '.' now, without awaiting anything (straight after the ledger's commit):
        a connection already gone shows in finish()."""
        staged.ended = True
        try:
            # A reply is expected from now: aiosmtplib drops data that arrives while none is (its
            # own commands set this before writing), and finish() reads it after an await.
            staged.client.protocol._response_pending = True
            staged.client.protocol.write(b".\r\n")
        except Exception:  # noqa: BLE001 - finish() reads the failure and classifies it
            pass

    async def finish(self, staged: Staged) -> None:
        """Write the final '.' (unless end_data did) and read the server's answer: raises Rejected or Deferred."""
        client = staged.client
        try:
            async with asyncio.timeout(self.settings.smtp_timeout_s):
                if not staged.ended:
                    client.protocol.write(b".\r\n")
                response = await client.protocol.read_response(timeout=None)
            if response.code != 250:
                raise aiosmtplib.SMTPDataError(response.code, response.message)
        except SMTP_ERRORS as exc:
            self.discard(client)
            raise classify(exc) from exc
        self._idle.append(client)

    def abort(self, staged: Staged) -> None:
        """Drop a staged message: closing mid-DATA makes the server discard it."""
        self.discard(staged.client)

    def discard(self, client: aiosmtplib.SMTP | None) -> None:
        if client is not None:
            client.close()

    async def close(self) -> None:
        while self._idle:
            client = self._idle.pop()
            try:
                await asyncio.wait_for(client.quit(), 2)
            except Exception:  # noqa: BLE001 - closing anyway
                client.close()


class SmtpReachable:
    """Whether the SMTP server answers (connect, greeting, login if set, QUIT), for /readyz: a
    notifier that cannot reach its mail server sends nothing, and must say so (compose without
    --profile dev used to fail every email silently while reporting healthy). Asked every
    `every_s` while it answers, every `retry_s` while it does not."""

    def __init__(self, settings: NotifierSettings, every_s: float = 30.0, retry_s: float = 5.0, clock=None) -> None:
        import time

        self.settings = settings
        self.every_s, self.retry_s = every_s, retry_s
        self.clock = clock or time.monotonic
        self._verdict: tuple[bool, dict] | None = None
        self._asked_at = float("-inf")

    async def __call__(self) -> tuple[bool, dict]:
        wait_s = self.every_s if self._verdict is None or self._verdict[0] else self.retry_s
        if self._verdict is not None and self.clock() - self._asked_at < wait_s:
            return self._verdict
        self._asked_at = self.clock()
        s = self.settings
        where = {"smtp_host": s.smtp_host, "smtp_port": s.smtp_port}
        try:
            client = await SmtpPool(s)._connect()
            await asyncio.wait_for(client.quit(), s.smtp_timeout_s)
        except SMTP_ERRORS as exc:
            self._verdict = (False, {**where, "error": f"{type(exc).__name__}: {exc}"[:200],
                                     "fix": "set SMTP_HOST and SMTP_PORT to your mail server "
                                            "(compose: `make up` without SMTP_HOST runs Mailpit, --profile dev)"})
        else:
            self._verdict = (True, where)
        return self._verdict
