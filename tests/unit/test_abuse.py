"""Who a request comes from, how often it signed, throwaway domains (services/signing/abuse.py)."""

import pytest
from sqlalchemy import MetaData, create_engine

from services.signing.abuse import ClientAddresses, Hit, RateLimits, client_key, is_disposable, rate_windows_table


def test_the_peer_is_the_client_unless_it_is_a_trusted_proxy():
    clients = ClientAddresses("127.0.0.1,10.0.0.0/8,unix")
    assert clients.of(("203.0.113.7", 5000), b"198.51.100.1") == "203.0.113.7"  # not trusted: its header is not
    assert clients.of(("10.1.2.3", 5000), b"198.51.100.1") == "198.51.100.1"
    assert clients.of(None, b"198.51.100.1") == "198.51.100.1"  # the front door on a Unix socket
    # The right-most address that is not itself a trusted proxy: a client cannot prepend its way out.
    assert clients.of(("127.0.0.1", 1), b"6.6.6.6, 198.51.100.1, 10.9.9.9") == "198.51.100.1"
    assert clients.of(("127.0.0.1", 1), None) == "127.0.0.1"
    assert ClientAddresses("").of(None, b"198.51.100.1") == "unix"  # a Unix peer not trusted


def test_a_bad_trusted_proxies_entry_is_named():
    for bad in ("front door", "http://web", "10.0.0.300/8", "web_1"):
        with pytest.raises(ValueError, match=f"'{bad}' is not an address, a network, a host name or 'unix'"):
            ClientAddresses(f"127.0.0.1,{bad}")


def test_only_the_unix_socket_is_trusted_by_default():
    """Issue 21: signing reached directly on its TCP port believed X-Forwarded-For from any
    loopback peer, so a script on the host could rotate addresses past the rate limit."""
    from services.signing.settings import SigningSettings

    clients = ClientAddresses(SigningSettings(_env_file=None).trusted_proxies)
    assert clients.of(("127.0.0.1", 5000), b"198.51.100.1") == "127.0.0.1"
    assert clients.of(("::1", 5000), b"198.51.100.1") == "::1"
    assert clients.of(None, b"198.51.100.1") == "198.51.100.1"  # the front door, on the Unix socket


async def test_a_trusted_host_name_is_trusted_at_the_addresses_it_resolves_to():
    clients = ClientAddresses("localhost")
    assert clients.of(("127.0.0.1", 1), b"198.51.100.1") == "127.0.0.1"  # not resolved yet
    await clients.refresh()
    assert "127.0.0.1" in clients.resolved
    assert clients.of(("127.0.0.1", 1), b"198.51.100.1") == "198.51.100.1"
    assert clients.of(("127.0.0.2", 1), b"198.51.100.1") == "127.0.0.2"


def test_client_keys_are_keyed_hashes():
    one = client_key(b"secret", "198.51.100.1")
    assert one == client_key(b"secret", "198.51.100.1") and len(one) == 32
    assert one != client_key(b"other secret", "198.51.100.1") and one != client_key(b"secret", "198.51.100.2")
    assert "198" not in one


def test_throwaway_domains_and_their_subdomains():
    assert is_disposable("someone@mailinator.com") and is_disposable("someone@x.mailinator.com")
    assert not is_disposable("someone@example.org") and not is_disposable("someone@gmail.com")


def test_rate_limits_count_in_order_per_client_and_petition():
    engine = create_engine("sqlite://")
    table = rate_windows_table(MetaData())
    table.create(engine)
    now = [1_000_000.0]
    limits = RateLimits("3/minute;5/hour", table, "sqlite", clock=lambda: now[0])
    a, b = Hit("client-a", "p1"), Hit("client-b", "p1")
    with engine.begin() as conn:
        assert limits.over(conn, [a, a, b, None, a, a]) == [False, False, False, False, False, True]
        assert limits.over(conn, [a, Hit("client-a", "p2")]) == [True, False]  # per petition
        now[0] += 60  # the next minute: the minute's window is new, the hour's is not (5 by now)
        assert limits.over(conn, [a]) == [True]
        assert limits.over(conn, [b, b]) == [False, False]
    assert RateLimits("", table, "sqlite").over(None, [a] * 100) == [False] * 100


def test_the_mail_budget_counts_per_mailbox_per_hour_and_per_day():
    from services.signing.abuse import MailBudget, mail_budget_table

    engine = create_engine("sqlite://")
    table = mail_budget_table(MetaData())
    table.create(engine)
    now = [86400.0 * 20_000 + 10]  # the start of a day (and of its first hour)
    budget = MailBudget(3, 5, table, "sqlite", clock=lambda: now[0])
    a, b = "k1:" + "a" * 64, "k1:" + "b" * 64
    with engine.begin() as conn:
        assert budget.over(conn, [a, a, b, None, a, a]) == [False, False, False, False, False, True]
        now[0] += 3600  # the next hour: 3 more for a this hour, but only 5 a day (4 counted so far)
        assert budget.over(conn, [a, a]) == [False, True]
        assert budget.over(conn, [b, b]) == [False, False]
        now[0] += 86400  # the next day: all fresh
        assert budget.over(conn, [a, a, a, a]) == [False, False, False, True]
    assert MailBudget(0, 0, table, "sqlite").over(None, [a] * 100) == [False] * 100
    with engine.connect() as conn:
        assert conn.execute(table.select()).all() == [("a" * 16, 20_001 * 24 + 1, 4, 20_001, 4),
                                                      ("b" * 16, 20_000 * 24 + 1, 2, 20_000, 3)]
