"""Notifier service settings."""

from pydantic import AliasChoices, Field, field_validator

from shared.settings import ServiceSettings


class NotifierSettings(ServiceSettings):
    port: int = Field(8003, description="HTTP listen port of the notifier's health endpoints.")
    database_url: str = Field(
        "sqlite+aiosqlite:///.data/notifier.db",
        validation_alias="DATABASE_URL",
        description="SQLAlchemy async URL of the notifier database.",
    )
    smtp_host: str = Field("127.0.0.1", validation_alias=AliasChoices("SMTP_HOST", "GROUNDSWELL_SMTP_HOST"),
                           description="SMTP server host.")
    smtp_port: int = Field(1025, validation_alias=AliasChoices("SMTP_PORT", "GROUNDSWELL_SMTP_PORT"),
                           description="SMTP server port.")
    smtp_username: str | None = Field(None, validation_alias=AliasChoices("SMTP_USERNAME", "GROUNDSWELL_SMTP_USERNAME"),
                                      description="SMTP login, if the server needs one.")
    smtp_password: str | None = Field(None, validation_alias=AliasChoices("SMTP_PASSWORD", "GROUNDSWELL_SMTP_PASSWORD"),
                                      description="SMTP password, if the server needs one.")
    smtp_starttls: bool = Field(False, validation_alias=AliasChoices("SMTP_STARTTLS", "GROUNDSWELL_SMTP_STARTTLS"),
                                description="Upgrade the SMTP connection with STARTTLS.")
    smtp_timeout_s: float = Field(10.0, description="Bound on one SMTP conversation.")
    mail_from: str = Field("Groundswell <no-reply@groundswell.localhost>", description="From header of emails.")
    message_id_domain: str = Field("groundswell.localhost", description="Domain part of Message-IDs.")
    ack_wait_s: float = Field(30.0, description="Redelivery delay of an unacknowledged event; also the claim lease.")
    retry_base_s: float = Field(2.0, description="First retry delay after an SMTP failure (doubles each time).")
    retry_max_s: float = Field(600.0, description="Longest delay between SMTP retries.")
    dead_letter_after: int = Field(
        5, ge=1, description="Deliveries of an event failing for a reason other than a dependency being away "
                             "before it is set aside as a dead letter (groundswell counter dead-letters, groundswell notifier dead-letters).")
    stream_replicas: int = Field(1, description="Replicas of the event stream (3 on a NATS cluster).")
    signing_url: str = Field("http://127.0.0.1:8001", description="Where the notifier reads supporters to email (signing's base URL).")
    counter_url: str = Field("http://127.0.0.1:8002", description="Where the notifier reads a petition's figures "
                                                                  "for its decision maker's email (the counter's base URL).")
    internal_token: str | None = Field(
        None, description="Bearer token between signing and the notifier (signing's recipient list, the "
                         "notifier's email figures); required in production mode."
    )
    supporter_emails_per_s: float = Field(20.0, description="Most supporter emails sent per second (throttle).")
    emails_per_s: float = Field(
        1000.0, gt=0, description="Most confirmation and organizer emails sent per second (throttle).")
    supporter_batch: int = Field(25, ge=1, description="Emails sent at once (SMTP connections held).")
    event_batch: int = Field(64, ge=1, description="Events handled per batch from the stream at most.")
    event_window_s: float = Field(
        0.02, gt=0, description="How long a batch gathers events at most before it is handled, unless it fills first."
    )
    event_batches_in_flight: int = Field(
        2, ge=1, le=16,
        description="Fetched batches handled at once: one uses the CPU while another waits on signing, "
                    "the database or SMTP.",
    )
    supporter_page: int = Field(500, description="Recipients read from signing per request.")
    dkim_selector: str | None = Field(
        None, description="DKIM selector (the DNS name <selector>._domainkey.<domain> holds the public key). With "
                          "GROUNDSWELL_DKIM_PRIVATE_KEY_FILE, every email is DKIM-signed; unset, none is (a warning in "
                          "production).")
    dkim_private_key_file: str | None = Field(
        None, description="Path of the DKIM private key (PEM, RSA) that signs every email.")
    dkim_domain: str | None = Field(None, description="DKIM signing domain (d=); the From address's domain if unset.")

    @field_validator("smtp_username", "smtp_password", "dkim_selector", "dkim_private_key_file", "dkim_domain",
                     mode="before")
    @classmethod
    def _blank_is_none(cls, value):
        """Compose passes unset credentials as empty strings: no login then."""
        return value or None
