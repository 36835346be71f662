"""Signing service settings (env prefix GROUNDSWELL_, NATS_URL, DATABASE_URL)."""

from pathlib import Path

from pydantic import Field, field_validator

from services.signing.abuse import parse_networks

from shared.settings import ServiceSettings, limits_notation


class SigningSettings(ServiceSettings):
    port: int = Field(8001, description="HTTP listen port of the signing API.")
    database_url: str = Field(
        "sqlite+aiosqlite:///.data/signing.db",
        validation_alias="DATABASE_URL",
        description="SQLAlchemy async URL of the signing database.",
    )
    admin_token: str | None = Field(
        None, description="Bearer token for creating petitions; required in production mode."
    )
    max_body_bytes: int = Field(65536, description="Largest request body accepted (413 above).")
    relay_sweep_interval_s: float = Field(1.0, description="Outbox sweep period when nothing wakes it.")
    relay_batch_size: int = Field(500, description="Outbox rows published per round.")
    stream_replicas: int = Field(1, description="Replicas of the event stream (3 on a NATS cluster).")
    cors_origins: str = Field("", description="Comma-separated origins allowed to call the API from a browser (`*` for any).")
    socket: Path | None = Field(
        None, description="Also listen on this Unix socket: the front door's upstream on the same host (faster than TCP)."
    )
    public_dir: Path | None = Field(
        None, description="Folder the front door serves as files: count documents, hot petitions' pages, static assets."
    )
    page_refresh_s: float = Field(0.25, description="Least time between two renderings of a petition's page files.")
    commit_max_batch: int = Field(512, description="Most signatures (and other writes) committed in one transaction.")
    home_petition: str | None = Field(None, description="Slug of a petition featured above the list at `/` (the embedded default sets the seed).")
    mailbox_key: str | None = Field(
        None, description="Secret of the keyed hash signers are deduplicated by (kept after erasure); "
        "required in production mode; changing it lets every earlier signer sign again."
    )
    internal_token: str | None = Field(
        None, description="Bearer token the notifier uses to read recipients; required in production mode."
    )

    confirm_signatures: bool = Field(
        True, description="Count a signature only once its emailed link is followed (false: count on signing).")
    confirmation_resend_s: float = Field(
        300.0, description="Least time between two confirmation emails for the same pending signature.")
    pending_expiry_days: float = Field(
        7.0, gt=0, description="Unconfirmed signatures older than this are purged (their links stop working).")
    sign_rate_limit: str = Field(
        "5/minute;30/hour",
        description="Signatures per client address per petition, in the `limits` notation (`;` between "
                    "limits; empty: none). Over it, the answer is the same 202 and the signature is held.")
    start_rate_limit: str = Field(
        "5/hour;20/day",
        description="Petitions started at /start per client address, and per organizer address, in the `limits` "
                    "notation (empty: none). Each start emails the address given; over it, /start answers 429.")
    mailbox_emails_per_hour: int = Field(
        10, ge=0, description="Emails to one mailbox that anyone could have asked for by typing the address "
                              "(signature confirmations and their resends, a petition's confirmation at /start, "
                              "sign-in links) in one clock hour; over it, nothing is sent and the answers stay the "
                              "same (0: no limit).")
    mailbox_emails_per_day: int = Field(
        30, ge=0, description="The same emails to one mailbox in one UTC day (0: no limit).")
    trusted_proxies: str = Field(
        "unix",
        description="Peers whose X-Forwarded-For is believed: the front door's (addresses, networks, host names "
                    "resolved every 30 s, `unix` for a peer on GROUNDSWELL_SOCKET). Anyone else's header is ignored.")
    client_key_retention_days: float = Field(
        30.0, gt=0, description="How long a signature keeps its client address's keyed hash (for moderation).")
    hold_disposable: bool = Field(
        True, description="Hold signatures from throwaway mailbox domains (the disposable-email-domains list).")
    purge_interval_s: float = Field(600.0, gt=0, description="How often expired pending signatures and old "
                                                             "client hashes and rate windows are purged.")

    counter_url: str = Field("http://127.0.0.1:8002", description="Where the organizer's dashboard reads the "
                                                                  "petition's figures (the counter's base URL).")
    notifier_url: str = Field("http://127.0.0.1:8003", description="Where the organizer's dashboard reads how "
                                                                    "many emails were sent (the notifier's base URL).")
    sign_in_link_ttl_s: float = Field(
        1800.0, gt=0, description="How long an organizer's emailed sign-in link works (once).")
    organizer_session_ttl_s: float = Field(
        43200.0, gt=0, description="How long an organizer stays signed in to their petition's dashboard.")
    sign_in_resend_s: float = Field(
        60.0, ge=0, description="Least time between two sign-in links for the same petition.")
    moderate_petitions: bool = Field(
        True, description="A petition started at /start waits for a moderator's approval (after its organizer "
                          "confirms their email) before it goes live.")
    embed_origins: str = Field(
        "", description="Comma-separated origins (https://news.example) whose pages may embed the petition "
                        "widget (`/w/<slug>`, `/static/widget.js`); `*` for any; empty: this site only.")

    list_cache_s: float = Field(
        0.5, ge=0, description="Seconds a rendered page of the discovery list (/, /petitions) is served from memory; "
                               "with the counter's own, a list is at most a second behind the counts.")
    response_link_days: float = Field(
        90.0, gt=0, description="How long a decision maker's emailed link to respond works (once).")

    @field_validator("sign_rate_limit", "start_rate_limit")
    @classmethod
    def _limits_notation(cls, value: str) -> str:
        return limits_notation(value)

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, value: str) -> str:
        parse_networks(value)
        return value

    def migration_attributes(self) -> dict:
        return {"mailbox_secret": self.mailbox_secret()}

    def mailbox_secret(self) -> bytes:
        """GROUNDSWELL_MAILBOX_KEY; outside production mode a fixed development key stands in."""
        return (self.mailbox_key or DEVELOPMENT_MAILBOX_KEY).encode()


DEVELOPMENT_MAILBOX_KEY = "groundswell-development-mailbox-key"  # never used in production mode (services/cli.py)
