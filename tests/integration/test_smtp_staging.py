"""Staged SMTP against a real aiosmtpd server: nothing is delivered until the final '.', a
connection dropped before it delivers nothing, and a kept connection the server closed is replaced."""

from types import SimpleNamespace

from services.notifier.mime import Email, alternative
from services.notifier.smtp import SmtpPool
from tests.harness import SmtpServer, eventually


def message(to: str) -> Email:
    return alternative([("From", "Groundswell <no-reply@example.org>"), ("To", to), ("Subject", "staged")],
                       ".a line that starts with a dot\n.\nand a lone dot above", "<p>.</p>")


def settings(port: int):
    return SimpleNamespace(smtp_host="127.0.0.1", smtp_port=port, smtp_timeout_s=5, smtp_starttls=False,
                           smtp_username=None, smtp_password=None)


async def test_only_the_final_dot_delivers_and_a_dropped_stage_delivers_nothing():
    server = SmtpServer()
    server.start()
    try:
        pool = SmtpPool(settings(server.port))
        kept = await pool.stage(message("a@example.org"))
        dropped = await pool.stage(message("b@example.org"))
        assert server.messages == []  # staged, not sent
        pool.abort(dropped)  # as if the process died before the dot
        await pool.finish(kept)
        assert [m["To"] for m in server.messages] == ["a@example.org"]
        body = server.messages[0].get_body(("plain",)).get_content()
        assert body.replace("\r\n", "\n").startswith(".a line that starts with a dot\n.\nand")  # dot-stuffing undone

        # The kept connection dies under the pool; the next stage opens a fresh one.
        pool._idle[0].protocol.transport.abort()
        again = await pool.stage(message("c@example.org"))
        await pool.finish(again)
        eventually(lambda: len(server.messages) == 2, message="second message")
        assert server.messages[1]["To"] == "c@example.org"
        await pool.close()
    finally:
        server.stop()
