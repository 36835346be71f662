"""Staged SMTP against a real aiosmtpd server: nothing is delivered until the final '.', a
connection dropped before it delivers nothing, and a kept connection the server closed is replaced."""

from types import SimpleNamespace

from services.notifier.emails import Email, alternative
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


async def test_an_email_that_cannot_be_written_is_rejected_alone_and_idna_domains_are_sent(tmp_path):
    """One email of a chunk whose address cannot be written (characters before the @ that need
    SMTPUTF8, from before signing refused them) is recorded as rejected, once; the others in the
    same chunk go out, an internationalized domain in its IDNA form, in the envelope and in To."""
    from services.notifier.delivery import Outgoing, Pipeline
    from services.notifier.emails import confirmation_email
    from shared.db import create_engine, sessionmaker
    from shared.migrations import migrate
    from tests.databases import Database

    server = SmtpServer()
    server.start()
    database = Database("sqlite", "notifier", tmp_path)
    try:
        await migrate("notifier", database.url)
        engine = create_engine(database.url)
        pipeline = Pipeline(sessionmaker(engine), SimpleNamespace(
            **vars(settings(server.port)), ack_wait_s=30, emails_per_s=1000, supporter_emails_per_s=1000,
            supporter_batch=25))
        petition = SimpleNamespace(title="Idn", slug="idn")

        def outgoing(recipient: str, address: str) -> Outgoing:
            signer = SimpleNamespace(name="Jo", email=address, confirm_url="http://127.0.0.1/c/t", language="en")
            return Outgoing(recipient, f"<{recipient}@x>", lambda: confirmation_email(
                signer, petition, mail_from="Groundswell <no-reply@example.org>", message_id_value=f"<{recipient}@x>"))

        emails = [outgoing("s1.1", "plain@example.org"), outgoing("s2.1", "josé@example.org"),
                  outgoing("s3.1", "jo@exämple.org")]
        outcome = await pipeline.send("p1", 0, emails, kind="confirmation")
        assert (outcome.sent, outcome.rejected, outcome.retry) == ({"s1.1", "s3.1"}, {"s2.1"}, set())
        eventually(lambda: len(server.messages) == 2, message="two messages")
        assert sorted(m["To"].addresses[0].addr_spec for m in server.messages) == [
            "jo@xn--exmple-cua.org", "plain@example.org"]
        again = await pipeline.send("p1", 0, emails, kind="confirmation")
        assert (again.sent, again.done) == (set(), {"s1.1", "s2.1", "s3.1"})  # the rejected one is not retried
        await pipeline.close()
        await engine.dispose()
    finally:
        database.drop()
        server.stop()


async def test_readiness_says_when_the_mail_server_does_not_answer():
    """Issue 22: with compose's default SMTP_HOST and no Mailpit, every email failed while the
    notifier reported healthy. Its readiness now asks the server (connect, greeting, QUIT): not
    ready, naming the host, the error and the fix, while it does not answer; ready once it does."""
    from services.embedded.ports import free_port
    from services.notifier.smtp import SmtpReachable

    clock = [0.0]
    port = free_port()
    reachable = SmtpReachable(settings(port), every_s=30, retry_s=5, clock=lambda: clock[0])
    ready, detail = await reachable()
    assert not ready and detail["smtp_port"] == port and "SMTP_HOST" in detail["fix"]
    assert "ConnectError" in detail["error"] or "OSError" in detail["error"], detail
    server = SmtpServer()
    server.controller.port = port
    server.start()
    try:
        assert (await reachable())[0] is False  # asked again only after retry_s
        clock[0] += 5
        assert (await reachable())[0] is True
        assert server.messages == []  # asking sends nothing
    finally:
        server.stop()
