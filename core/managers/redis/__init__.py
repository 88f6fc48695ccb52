"""The public names of the RedisManager; the code is in :mod:`.manager`."""

from core.managers.redis.codec import text
from core.managers.redis.manager import RedisManager
from core.managers.redis.pubsub import Callback, Message
from core.managers.redis.scripts import Script

__all__ = [
    "Callback",
    "Message",
    "RedisManager",
    "Script",
    "text",
]
