"""Counter service settings."""

from pydantic import Field

from shared.settings import ServiceSettings


class CounterSettings(ServiceSettings):
    port: int = Field(8002, description="HTTP listen port of the count API.")
    database_url: str = Field(
        "sqlite+aiosqlite:///.data/counter.db",
        validation_alias="DATABASE_URL",
        description="SQLAlchemy async URL of the counter database.",
    )
    batch_size: int = Field(500, description="Events applied per database transaction at most.")
    batch_linger_s: float = Field(
        0.02, description="How long a batch gathers events at most before it is applied, unless it fills first "
              "(adds to the count's delay; a longer window shares each transaction among more events)."
    )
    ack_wait_s: float = Field(30.0, description="Redelivery delay for an event not acknowledged.")
    retry_delay_s: float = Field(2.0, description="Delay before a failed batch is delivered again.")
    dead_letter_after: int = Field(
        5, ge=1, description="Deliveries of an event failing for a reason other than a dependency being away "
                             "before it is set aside as a dead letter (groundswell counter dead-letters, groundswell notifier dead-letters).")
    relay_sweep_interval_s: float = Field(1.0, description="Outbox sweep period when nothing wakes it.")
    stream_replicas: int = Field(1, description="Replicas of the event stream (3 on a NATS cluster).")
    count_max_age_s: int = Field(1, description="Seconds a count response may be cached (Cache-Control max-age).")
    count_stale_s: int = Field(1, description="Seconds a cache may serve a stale count while revalidating.")
    live_poll_s: float = Field(
        1.0, description="How often live-count streams and the COUNTS bucket look for changes made by other replicas."
    )
    live_max_streams: int = Field(
        2000, ge=1, description="Live-count (SSE) connections one counter process holds at most; beyond, 503 with Retry-After."
    )
    live_heartbeat_s: float = Field(
        15.0, gt=0, description="Seconds between keep-alive comments on an idle live-count stream."
    )
    cors_origins: str = Field("", description="Comma-separated origins allowed to call the API from a browser (`*` for any).")
    signing_url: str = Field("http://127.0.0.1:8001", description="Where the counter reads what petitions say "
                             "(titles, stories, responses) for the discovery list: signing's base URL.")
    internal_token: str | None = Field(
        None, description="Bearer token for signing's internal API (the discovery list's texts); required in "
                          "production mode.")
    list_page_size: int = Field(20, ge=1, le=100, description="Petitions per page of /petitions and its JSON and CSV.")
    list_cache_s: float = Field(
        0.5, ge=0, description="Seconds a rendered list (JSON, CSV) is served from memory; with signing's own "
                               "(the HTML list) a list is at most a second behind the counts.")
