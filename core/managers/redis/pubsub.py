"""Pub/sub for cross-instance events: ONE background listener thread per RedisManager.

Messages are JSON objects (see :mod:`core.managers.redis.codec`). The listener thread owns the
pub/sub connection: it applies subscription changes, dispatches messages to callbacks and,
when the connection drops, reconnects with exponential backoff and subscribes again. Redis
does not queue pub/sub messages for absent subscribers, so whatever was published while the
listener was away is lost: ``epoch`` changes on every (re)subscription so that consumers
keeping a cache know when to re-read (see :mod:`core.managers.state`).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

import redis

from core.managers.redis.codec import loads, text

logger = logging.getLogger(__name__)

Message = dict[str, Any]
Callback = Callable[[Message], None]


class Listener:
    """Subscriptions and the thread that serves them; started by the first ``subscribe``."""

    poll_seconds = 0.1
    backoff_min = 0.1
    backoff_max = 5.0
    confirm_timeout = 2.0
    join_timeout = 2.0

    def __init__(self, client: redis.Redis) -> None:
        self._client = client
        self._cond = threading.Condition()
        self._handlers: dict[str, tuple[Callback, ...]] = {}
        self._confirmed: set[str] = set()
        self._changed = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._backoff = self.backoff_min
        #: Incremented whenever Redis confirms a subscription (first time or after a drop).
        self.epoch = 0
        #: True while every subscribed channel is confirmed on a live connection.
        self.connected = False

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def subscribe(self, channel: str, callback: Callback) -> bool:
        """Add ``callback`` for ``channel``; True once Redis confirmed the subscription.

        Waits (bounded) for the confirmation so that a message published right after this
        call is delivered; while Redis is down it returns False and the listener subscribes
        as soon as it can reconnect.
        """
        with self._cond:
            if self._stop.is_set():
                raise RuntimeError("the pub/sub listener is closed")
            self._handlers[channel] = (*self._handlers.get(channel, ()), callback)
            self._update_connected()
            self._changed.set()
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="redis-pubsub", daemon=True)
                self._thread.start()
            if threading.current_thread() is self._thread:
                return channel in self._confirmed
            return (
                self._cond.wait_for(
                    lambda: channel in self._confirmed or self._stop.is_set(),
                    timeout=self.confirm_timeout,
                )
                and channel in self._confirmed
            )

    def unsubscribe(self, channel: str, callback: Callback) -> None:
        with self._cond:
            callbacks = tuple(cb for cb in self._handlers.get(channel, ()) if cb != callback)
            if callbacks:
                self._handlers[channel] = callbacks
            else:
                self._handlers.pop(channel, None)
            self._update_connected()
            self._changed.set()

    def close(self) -> None:
        """Stop the thread (it polls every ``poll_seconds``) and wait for it, bounded."""
        with self._cond:
            self._stop.set()
            self._cond.notify_all()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(self.join_timeout)
            if thread.is_alive():
                logger.warning("pub/sub listener did not stop in time")

    # -- the listener thread -------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.is_set():
            pubsub = self._client.pubsub()  # type: ignore[no-untyped-call]
            try:
                self._serve(pubsub)
            except (redis.RedisError, OSError) as exc:
                logger.warning(
                    "pub/sub connection lost; reconnecting",
                    extra={"error": type(exc).__name__, "retry_in_s": self._backoff},
                )
            except Exception:
                logger.exception("pub/sub listener failed; restarting it")
            finally:
                self._disconnected()
                self._close_quietly(pubsub)
            if self._stop.wait(self._backoff):
                break
            self._backoff = min(self._backoff * 2, self.backoff_max)

    def _serve(self, pubsub: redis.client.PubSub) -> None:
        subscribed: set[str] = set()
        self._changed.set()  # a fresh connection subscribes to everything
        while not self._stop.is_set():
            if self._changed.is_set():
                self._changed.clear()
                with self._cond:
                    wanted = set(self._handlers)
                if wanted - subscribed:
                    pubsub.subscribe(*(wanted - subscribed))
                if subscribed - wanted:
                    pubsub.unsubscribe(*(subscribed - wanted))  # type: ignore[no-untyped-call]
                    with self._cond:
                        self._confirmed -= subscribed - wanted
                subscribed = wanted
            message = pubsub.get_message(timeout=self.poll_seconds)
            if message is not None:
                self._handle(message)

    def _handle(self, message: dict[str, Any]) -> None:
        channel = text(message["channel"])
        if message["type"] == "subscribe":
            with self._cond:
                self._confirmed.add(channel)
                self.epoch += 1
                self._backoff = self.backoff_min
                self._update_connected()
                self._cond.notify_all()
            return
        if message["type"] != "message":
            return
        try:
            payload = loads(message["data"])
        except ValueError:
            logger.warning("pub/sub message is not JSON; dropped", extra={"channel": channel})
            return
        if not isinstance(payload, dict):
            logger.warning("pub/sub message is not an object; dropped", extra={"channel": channel})
            return
        for callback in self._handlers.get(channel, ()):
            try:
                callback(payload)
            except Exception:
                logger.exception(
                    "pub/sub callback failed",
                    extra={"channel": channel, "callback": getattr(callback, "__qualname__", "?")},
                )

    def _update_connected(self) -> None:
        """Call with the lock held."""
        self.connected = bool(self._handlers) and self._confirmed.issuperset(self._handlers)

    def _disconnected(self) -> None:
        with self._cond:
            self._confirmed.clear()
            self._update_connected()

    @staticmethod
    def _close_quietly(pubsub: redis.client.PubSub) -> None:
        try:
            pubsub.close()
        except (redis.RedisError, OSError) as exc:
            logger.debug("pub/sub close failed", extra={"error": type(exc).__name__})
