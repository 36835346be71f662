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

from services.notifier.mime import Email
from services.notifier.settings import NotifierSettings

SMTP_ERRORS = (aiosmtplib.SMTPException, OSError, asyncio.TimeoutError)
_LEADING_DOT = re.compile(rb"(?m)^\.")


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
    return _LEADING_DOT.sub(b"..", data) if data.startswith(b".") or b"\n." in data else data


@dataclass
class Staged:
    client: aiosmtplib.SMTP
    message: Email


class SmtpPool:
    """Up to `size` open SMTP connections, reused from message to message."""

    def __init__(self, settings: NotifierSettings) -> None:
        self.settings = settings
        self._idle: list[aiosmtplib.SMTP] = []

    async def _connect(self) -> aiosmtplib.SMTP:
        s = self.settings
        client = aiosmtplib.SMTP(
            hostname=s.smtp_host, port=s.smtp_port, timeout=s.smtp_timeout_s, start_tls=s.smtp_starttls,
            username=s.smtp_username, password=s.smtp_password,
        )
        await client.connect()
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
        try:
            if client is None or not client.is_connected:
                client = await self._connect()
            await client.mail(message.sender)
            for recipient in message.recipients:
                await client.rcpt(recipient)
            response = await client.execute_command(b"DATA")
            if response.code != 354:
                raise aiosmtplib.SMTPDataError(response.code, response.message)
            client.protocol.write(wire_bytes(message))
        except SMTP_ERRORS as exc:
            self.discard(client)
            raise classify(exc) from exc
        return Staged(client, message)

    async def finish(self, staged: Staged) -> None:
        """Write the final '.' and read the server's answer: raises Rejected or Deferred."""
        client = staged.client
        try:
            client.protocol.write(b".\r\n")
            response = await client.protocol.read_response(timeout=self.settings.smtp_timeout_s)
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
