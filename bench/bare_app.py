"""The baseline: a bare Flask app returning the same JSON as the framework's bench routes.

Served by gunicorn with the same settings as the framework (``-c gunicorn.conf.py``: one
gevent worker, the same JSON access log), so the difference between the two is the framework.
"""

from __future__ import annotations

from flask import Flask, jsonify
from flask.typing import ResponseReturnValue

app = Flask(__name__)


@app.get("/ping")
def ping() -> ResponseReturnValue:
    return jsonify(status="ok")
