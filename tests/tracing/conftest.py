"""Tracing tests: apps exporting to an OTLP receiver started by the test session."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from flask import Flask

from core.testing import AppFactory
from tests.support.otlp import OtlpReceiver


@pytest.fixture(scope="session")
def otlp_receiver() -> Iterator[OtlpReceiver]:
    receiver = OtlpReceiver().start()
    yield receiver
    receiver.stop()


@pytest.fixture
def receiver(otlp_receiver: OtlpReceiver) -> OtlpReceiver:
    """The receiver, emptied for this test."""
    otlp_receiver.clear()
    return otlp_receiver


@pytest.fixture
def traced_app(make_app: AppFactory, receiver: OtlpReceiver) -> Flask:
    """An app exporting every trace to ``receiver`` (OTEL_EXPORTER_OTLP_ENDPOINT)."""
    return make_app({"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url})
