"""A counting SMTP sink for the fan-out benchmark: accepts every message and appends
'<unix time> <subject>' to a log file (no message bodies kept).

Its own process, and deliberately minimal: aiosmtpd (the tests' and `make run`'s sink) reads DATA
line by line in Python and costs about a millisecond a message, as much as the notifier itself, so
it would be what the benchmark measured. This one answers the commands an SMTP client sends
(EHLO/HELO, MAIL, RCPT, DATA, RSET, NOOP, QUIT) and finds the end of DATA in the buffer.
"""

import argparse
import asyncio
import re
import time

import uvloop

SUBJECT = re.compile(rb"^Subject: ([^\r\n]*)", re.M)
END_OF_DATA = b"\r\n.\r\n"


class Session(asyncio.Protocol):
    def __init__(self, log) -> None:
        self.log = log
        self.buffer = b""
        self.in_data = False

    def connection_made(self, transport) -> None:
        self.transport = transport
        transport.write(b"220 bench-sink ESMTP\r\n")

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            if self.in_data:
                end = self.buffer.find(END_OF_DATA)
                if end < 0:
                    return
                message, self.buffer = self.buffer[:end], self.buffer[end + len(END_OF_DATA):]
                found = SUBJECT.search(message)
                subject = found.group(1).decode("ascii", "replace") if found else ""
                self.log.write(f"{time.time():.6f} {subject}\n")
                self.in_data = False
                self.transport.write(b"250 OK\r\n")
                continue
            line_end = self.buffer.find(b"\r\n")
            if line_end < 0:
                return
            line, self.buffer = self.buffer[:line_end], self.buffer[line_end + 2:]
            self.command(line[:4].upper())

    def command(self, verb: bytes) -> None:
        if verb == b"EHLO":
            self.transport.write(b"250-bench-sink\r\n250-PIPELINING\r\n250 8BITMIME\r\n")
        elif verb == b"DATA":
            self.in_data = True
            self.buffer = b"\r\n" + self.buffer  # so a message that is only "." still ends at CRLF.CRLF
            self.transport.write(b"354 End data with <CR><LF>.<CR><LF>\r\n")
        elif verb == b"QUIT":
            self.transport.write(b"221 Bye\r\n")
            self.transport.close()
        else:  # HELO, MAIL, RCPT, RSET, NOOP
            self.transport.write(b"250 OK\r\n")


async def serve(port: int, log_path: str) -> None:
    log = open(log_path, "a", buffering=1)
    server = await asyncio.get_running_loop().create_server(lambda: Session(log), "127.0.0.1", port)
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--log", required=True)
    args = parser.parse_args()
    uvloop.run(serve(args.port, args.log))


if __name__ == "__main__":
    main()
