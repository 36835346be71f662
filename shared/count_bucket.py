"""The COUNTS bucket: where count documents (contract/counts.py) wait for whoever follows them.

The counter keeps one per petition in the JetStream key-value bucket COUNTS (key: petition id,
value: the document's JSON), put after each batch it commits. Signing follows the bucket to
render pages and to write the documents where the front door serves them as files, so viewers'
reads never wait on Python. The bucket is a cache of the projection, not the event log: it holds
no personal data and can be deleted; the counter puts every count again when it starts.
"""

import asyncio
from collections.abc import Awaitable, Callable

import nats.errors
import structlog
from nats.js import JetStreamContext, api
from nats.js.errors import BadRequestError, BucketNotFoundError
from nats.js.kv import KeyValue

from contract.counts import COUNTS_BUCKET, Count

log = structlog.get_logger("counts")


async def counts_bucket(js: JetStreamContext, replicas: int = 1) -> KeyValue:
    """The COUNTS bucket, created if missing (latest value per key, file storage)."""
    try:
        return await js.key_value(COUNTS_BUCKET)
    except BucketNotFoundError:
        pass
    try:
        return await js.create_key_value(api.KeyValueConfig(
            bucket=COUNTS_BUCKET, history=1, storage=api.StorageType.FILE, replicas=replicas,
            description="Each petition's public count document (a cache of the counter's projection).",
        ))
    except BadRequestError:
        return await js.key_value(COUNTS_BUCKET)  # another process created it meanwhile


OnCount = Callable[[Count], Awaitable[None]]
OnRemoved = Callable[[str], Awaitable[None]]


async def _ignore(petition_id: str) -> None:
    return None


async def follow_counts(js: JetStreamContext, on_count: OnCount, on_loaded: Callable[[], None],
                        replicas: int = 1, on_removed: OnRemoved = _ignore) -> None:
    """Forever: every document now in the bucket, then each new one as it is put; `on_loaded`
    once the documents present at the start have been delivered; `on_removed` with the petition
    id of a document taken out (a petition that is not public). The watch starts again after a
    reconnect (its ordered consumer may be gone with the server it lived on)."""
    nc = js._nc
    while True:
        try:
            kv = await counts_bucket(js, replicas)
            watcher = await kv.watchall()
        except (TimeoutError, nats.errors.Error) as exc:
            log.warning("counts_watch_failed", error=str(exc) or type(exc).__name__)
            await asyncio.sleep(1.0)
            continue
        reconnects = nc.stats["reconnects"]
        try:
            while nc.stats["reconnects"] == reconnects:
                try:
                    entry = await watcher.updates(timeout=1.0)
                except nats.errors.TimeoutError:
                    continue
                if entry is None:
                    on_loaded()
                elif entry.value:
                    await on_count(Count.model_validate_json(entry.value))
                elif entry.operation in ("DEL", "PURGE"):
                    await on_removed(entry.key)
        finally:
            try:
                await watcher.stop()
            except (TimeoutError, nats.errors.Error):
                pass
        log.info("counts_watch_restarting")
