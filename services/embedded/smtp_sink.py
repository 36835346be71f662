"""A local SMTP server that keeps each email as a .eml file and logs one line per email."""

import email
import email.policy
import itertools
import logging
import time
from pathlib import Path

import structlog
from aiosmtpd.controller import Controller

log = structlog.get_logger("smtp-sink")


class MaildirSink:
    """aiosmtpd handler: writes every accepted message to `folder` as <time>-<n>.eml."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.folder.mkdir(parents=True, exist_ok=True)
        self._numbers = itertools.count(1)

    async def handle_DATA(self, server, session, envelope) -> str:
        path = self.folder / f"{time.strftime('%Y%m%dT%H%M%S')}-{next(self._numbers):05d}.eml"
        try:
            path.write_bytes(envelope.content)
        except OSError as exc:  # a full disk: a 4xx, so the sender tries again (a 5xx would drop the email)
            path.unlink(missing_ok=True)
            log.warning("email_not_stored", error=exc.strerror or type(exc).__name__)
            return "452 4.3.1 Insufficient system storage; try again later"
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        log.info("email_received", file=path.name, subject=message["Subject"], message_id=message["Message-ID"])
        return "250 Message accepted for delivery"


def start_sink(folder: Path, port: int) -> Controller:
    # aiosmtpd logs every command at INFO, addresses included ("RCPT TO:<...>"): no address in logs.
    logging.getLogger("mail.log").setLevel(logging.WARNING)
    controller = Controller(MaildirSink(folder), hostname="127.0.0.1", port=port)
    controller.start()
    return controller
