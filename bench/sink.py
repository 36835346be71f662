"""A counting SMTP sink for the fan-out benchmark: accepts every message and appends
'<unix time> <subject>' to a log file (no message bodies kept). Its own process, so its CPU is
not the notifier's."""

import argparse
import asyncio
import email.parser
import email.policy
import time

from aiosmtpd.controller import Controller

HEADERS = email.parser.BytesHeaderParser(policy=email.policy.compat32)


class Counting:
    def __init__(self, log_path: str) -> None:
        self.log = open(log_path, "a", buffering=1)

    async def handle_DATA(self, server, session, envelope) -> str:
        subject = HEADERS.parsebytes(envelope.content).get("Subject", "")
        self.log.write(f"{time.time():.6f} {subject}\n")
        return "250 OK"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--log", required=True)
    args = parser.parse_args()
    controller = Controller(Counting(args.log), hostname="127.0.0.1", port=args.port)
    controller.start()
    try:
        asyncio.run(asyncio.Event().wait())
    finally:
        controller.stop()


if __name__ == "__main__":
    main()
