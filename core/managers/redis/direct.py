"""One hot command path straight on the pool's queue, without redis-py's per-command checkout,
and, under gevent, the commands of concurrent requests coalesced into one write and one read.

``Redis.execute_command`` checks a connection out of the pool for every command: a lock, a
socket poll to make sure the connection holds no unread data, observability counters, then
the command inside the retry wrapper, and the release. On the request path (the rate
limiter's one round trip per request, on a client without retries) that bookkeeping costs
more CPU than sending the command and reading the reply.

:class:`DirectConnections` takes a connection from the same queue the pool hands out (a
:class:`~core.managers.redis.pool.HandOffQueue`), sends, reads the whole reply and puts it
back: the pool's ``max_connections`` bounds these connections and the pool's other callers
together, and when all are in use a caller waits for one like any other (up to the pool's
``timeout``, ``REDIS_POOL_TIMEOUT_MS``, then ``ConnectionError``). A connection never goes
back with unread data: redis-py's ``send_command`` and ``read_response`` disconnect on every
error except an error *reply* (which is fully read), and a disconnected connection
reconnects on its next command. Closing the client disconnects them all.

**Coalescing (gevent only).** In a gevent worker (``socket`` monkey-patched when the object
is made), the first caller of a loop turn opens a *batch* and yields once to the hub; every
greenlet that calls ``execute`` before the hub comes back to it joins the batch (up to
:data:`MAX_BATCH`). The opener then takes one connection, sends every command of the batch in
one write, reads the replies in one go (hiredis parses them from one ``recv``) and hands each
caller its own reply: what ioredis calls auto-pipelining. Each caller still sends its own one
command; Redis runs them one after another as if they came on separate connections. Per
request that saves the socket syscalls and the I/O waits of every caller but the opener; a
caller alone in its turn pays the one yield (about 10 µs). Callers are the worker's greenlets,
which share its one hub (monkey-patched threads are greenlets too).

- An error *reply* (``NOSCRIPT``, ``OOM``, a script error) fails only its caller.
- A connection error or timeout (or a pool that stayed full for ``REDIS_POOL_TIMEOUT_MS``)
  fails every caller whose reply had not been read, each with the error a single call would
  raise; the connection is disconnected (redis-py does it) and the next batch reconnects.
  Callers whose replies were read before it get them: their commands ran.
- An opener interrupted (killed, or its own ``gevent.Timeout``) before the write raises alone:
  the other callers' commands never left, so they go out in a next batch. Interrupted after
  it, the callers without a reply fail with ``ConnectionError`` (their commands may have run).
- A batch holds one pooled connection from its write to its last reply, so the pool bound and
  the pool timeout hold as before (fewer connections are in use, not more).
- After a fork the parent's connections and any open batch are dropped.

Elsewhere (threads: the development server, the test client, the CLI) every call is sent on
its own, as before: threads do not take turns at a loop, and a call must not wait for others.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from queue import Empty
from typing import Any, TypeVar

import redis
from redis.connection import AbstractConnection, HiredisRespSerializer

try:
    from hiredis import pack_command as _hiredis_pack
except ImportError:  # hiredis is a requirement; the benchmark's (c-py) hides it
    _hiredis_pack = None  # type: ignore[assignment]

Result = TypeVar("Result")
#: The most calls one batch carries (about 110 KB in one write of a JWT route's limiter
#: commands, 847 bytes each); callers beyond it open the next batch, on another connection.
MAX_BATCH = 128


def _cooperative() -> bool:
    """Whether gevent has monkey-patched ``socket`` in this process (gunicorn's gevent worker)."""
    monkey = sys.modules.get("gevent.monkey")
    return monkey is not None and bool(monkey.is_module_patched("socket"))


class _Failed:
    """A caller's failure in a batch's replies (a reply may itself be an exception object)."""

    __slots__ = ("error", "shared")

    def __init__(self, error: BaseException, *, shared: bool) -> None:
        self.error = error
        #: One error for several callers (the connection's): each raises a copy of its own.
        self.shared = shared

    def raise_(self) -> Any:
        error = self.error
        if not self.shared:
            raise error
        try:
            copy = type(error)(*error.args)
        except TypeError:  # an exception class with arguments of its own
            copy = redis.ConnectionError(str(error))
        raise copy


_PENDING = _Failed(redis.ConnectionError("Redis batch ended without this reply"), shared=True)
#: A follower's reply when the batch's opener was interrupted before the write: send it again.
_RESEND = object()


class _Batch:
    """The calls of one loop turn: their commands, then their replies, and when they are in."""

    __slots__ = ("commands", "done", "replies", "sent")

    def __init__(self, first: tuple[Any, ...], done: Any) -> None:
        self.commands = [first]
        self.replies: list[Any] = []
        #: Whether the write started: from then on a command may have run.
        self.sent = False
        #: A gevent Event, set once every caller's reply (or failure) is in ``replies``.
        self.done = done

    def exchange(self, connection: AbstractConnection) -> None:
        """Send every command in one write, then read the replies in order into ``replies``."""
        replies = self.replies = [_PENDING] * len(self.commands)
        chunks: list[bytes | memoryview] = []
        sent = []
        for index, args in enumerate(self.commands):
            try:
                chunks.extend(_pack(connection, args))
            except (redis.DataError, ValueError, TypeError) as error:  # bad arguments: theirs only
                replies[index] = _Failed(error, shared=False)
            else:
                sent.append(index)
        if not sent:
            return
        self.sent = True
        connection.send_packed_command([b"".join(chunks)])  # type: ignore[no-untyped-call]
        for index in sent:
            try:
                replies[index] = connection.read_response()
            except redis.ResponseError as error:  # an error reply, fully read
                replies[index] = _Failed(error, shared=False)

    def fail(self, error: BaseException) -> None:
        """Every caller without a reply yet fails with ``error`` (a connection error), or with
        a ``ConnectionError`` when the sender itself was interrupted (killed, timed out) after
        the write; interrupted before it, they are sent again (:data:`_RESEND`)."""
        if not isinstance(error, redis.RedisError):
            if not self.sent:
                self.replies = [_RESEND] * len(self.commands)
                return
            error = redis.ConnectionError(f"Redis batch interrupted: {type(error).__name__}")
        failed = _Failed(error, shared=True)
        if not self.replies:
            self.replies = [failed] * len(self.commands)
            return
        self.replies = [failed if reply is _PENDING else reply for reply in self.replies]

    def reply(self, index: int) -> Any:
        reply = self.replies[index]
        if isinstance(reply, _Failed):
            return reply.raise_()
        return reply


class DirectConnections:
    """``execute(*args)`` sends one command on a connection of ``client``'s blocking pool.

    ``coalesce``: whether concurrent calls share a write and a read (default: under gevent).
    """

    def __init__(self, client: redis.Redis, *, coalesce: bool | None = None) -> None:
        pool = client.connection_pool
        if not isinstance(pool, redis.BlockingConnectionPool):
            raise TypeError("DirectConnections needs a client on a BlockingConnectionPool")
        self._pool = pool
        self._pid = os.getpid()
        self.coalescing = _cooperative() if coalesce is None else coalesce
        self._open: _Batch | None = None
        if self.coalescing:
            from gevent import sleep
            from gevent.event import Event

            self._yield: Callable[[], object] = lambda: sleep(0)
            self._event: Callable[[], Any] = Event

    def execute(self, *args: Any) -> Any:
        """The raw reply (no response callback: meant for commands like ``EVALSHA``)."""
        if self._pid != os.getpid():  # forked: the parent's sockets and batch are not ours
            self._pool.reset()  # type: ignore[no-untyped-call]
            self._open = None
            self._pid = os.getpid()
        if self.coalescing:
            return self._coalesced(args)
        return self._on_connection(lambda connection: _alone(connection, args))

    def _coalesced(self, args: tuple[Any, ...]) -> Any:
        batch = self._open
        if batch is not None and len(batch.commands) < MAX_BATCH:
            index = len(batch.commands)
            batch.commands.append(args)
            batch.done.wait()
            if batch.replies[index] is _RESEND:  # its opener was interrupted before the write
                return self._coalesced(args)
            return batch.reply(index)
        batch = self._open = _Batch(args, self._event())
        try:
            self._yield()  # the other greenlets of this loop turn join the batch
            if self._open is batch:
                self._open = None
            self._on_connection(batch.exchange)
        except BaseException as error:
            if self._open is batch:
                self._open = None
            batch.fail(error)
            if not isinstance(error, redis.RedisError) or isinstance(batch.replies[0], _Failed):
                raise
            # the opener's own reply was read before the connection failed: its command ran
        finally:
            batch.done.set()
        return batch.reply(0)

    def _on_connection(self, work: Callable[[AbstractConnection], Result]) -> Result:
        """``work(connection)`` on a connection of the pool, waiting for one as the pool does."""
        pool = self._pool
        queue = pool.pool
        try:
            connection = queue.get(True, pool.timeout)
        except Empty:  # every connection stayed in use for the whole wait
            raise redis.ConnectionError("No connection available.") from None
        try:
            if connection is None:  # a free slot: the pool makes (and tracks) a connection
                connection = pool.make_connection()  # type: ignore[no-untyped-call]
            return work(connection)
        finally:
            queue.put_nowait(connection)


def _alone(connection: AbstractConnection, args: tuple[Any, ...]) -> Any:
    connection.send_packed_command(_pack(connection, args))  # type: ignore[no-untyped-call]
    return connection.read_response()


def _pack(connection: AbstractConnection, args: tuple[Any, ...]) -> list[bytes]:
    """The command in RESP, as ``connection.pack_command`` packs it: with hiredis, straight
    through hiredis's packer. redis-py's wrapper around it splits and re-checks every argument
    first: 11 of its 16 µs on the limiter's EVALSHA on this machine, for arguments that are
    already what hiredis takes. Anything else (a command name with a space, a ``bytearray``
    or ``memoryview`` argument, a type hiredis refuses, a connection packing otherwise) goes
    through the connection's own packer, which converts it or raises its ``DataError``."""
    name = args[0]
    if (
        _hiredis_pack is not None
        and type(connection._command_packer) is HiredisRespSerializer
        and type(name) is str
        and " " not in name
    ):
        try:
            return [_hiredis_pack(args)]
        except TypeError:
            pass
    return connection.pack_command(*args)  # type: ignore[no-any-return,no-untyped-call]
