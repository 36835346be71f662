"""Settings every service reads; each service extends this with its own prefix."""

from typing import Literal

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from contract.counts import DEFAULT_THRESHOLDS, Threshold, parse_thresholds


def limits_notation(value: str) -> str:
    """A setting in the `limits` library's notation ("5/minute;30/hour"), or empty for none."""
    if value.strip():
        from limits import parse_many

        try:
            parse_many(value)
        except ValueError:
            raise ValueError(f"'{value}' is not in the limits notation, e.g. '5/minute;30/hour'") from None
    return value


class ServiceSettings(BaseSettings):
    """Connection and runtime settings common to all services."""

    model_config = SettingsConfigDict(env_prefix="GROUNDSWELL_", extra="ignore")

    mode: Literal["embedded", "production"] = Field(
        "production", description="`embedded` allows generated secrets; `production` requires them."
    )
    nats_url: str = Field(
        "nats://127.0.0.1:4222",
        validation_alias=AliasChoices("NATS_URL", "GROUNDSWELL_NATS_URL"),
        description="NATS server URL(s), comma-separated for a cluster.",
    )
    database_url: str = Field(
        "sqlite+aiosqlite:///.data/service.db",
        validation_alias=AliasChoices("DATABASE_URL", "GROUNDSWELL_DATABASE_URL"),
        description="SQLAlchemy async URL of this service's own database.",
    )
    host: str = Field("127.0.0.1", description="HTTP listen address.")
    port: int = Field(8000, description="HTTP listen port.")
    log_level: str = Field("INFO", description="Log level.")
    log_format: Literal["auto", "json", "console"] = Field(
        "auto", description="`auto`: readable on a terminal, JSON lines otherwise."
    )
    public_url: str = Field(
        "http://127.0.0.1:8001", description="Base URL of the public site, used in links and emails."
    )
    migrate_on_start: bool = Field(
        True, description="Run this service's migrations at start (under a lock; a no-op when current)."
    )
    nats_connect_timeout_s: float = Field(5.0, description="Bound on one NATS connect attempt.")
    stall_after_s: float = Field(
        30.0, gt=0, description="Readiness fails (and `events_stalled` is logged) when an event has waited this long in "
                                "the outbox, or the consumer has not moved this long while events wait.")
    min_free_mb: int = Field(
        8, ge=0, description="Readiness fails while a local folder this service writes (SQLite, the front door's) "
                             "has less free space than this.")
    token_failure_limit: str = Field(
        "10/minute;50/hour",
        description="Wrong admin or internal tokens per client, in the `limits` notation (empty: none); over it, "
                    "every attempt from that client is a 429 until the window passes.")

    thresholds: str = Field(
        DEFAULT_THRESHOLDS,
        description="Where a petition reaches its decision maker: comma-separated `count:label` (the pages show "
                    "the labels). At each, the decision maker named at creation receives the petition once, with a "
                    "link to respond.")

    @field_validator("thresholds")
    @classmethod
    def _thresholds(cls, value: str) -> str:
        parse_thresholds(value)
        return value

    @property
    def threshold_list(self) -> list[Threshold]:
        return parse_thresholds(self.thresholds)

    @field_validator("token_failure_limit")
    @classmethod
    def _token_limit_notation(cls, value: str) -> str:
        return limits_notation(value)

    @property
    def nats_servers(self) -> list[str]:
        return [url.strip() for url in self.nats_url.split(",") if url.strip()]

    def migration_attributes(self) -> dict:
        """What this service's migrations may need besides the connection (a secret, say)."""
        return {}
