"""/metrics: the cluster's Prometheus metrics (see cardume.master.metrics), for a scraper
with a read user of the REST API (Prometheus' ``basic_auth``)."""

from __future__ import annotations

from cardume.rapi.base import Call, PlainText

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
"""Prometheus' text exposition format."""


async def metrics(call: Call) -> PlainText:
    text = await call.master.call("QueryMetrics")
    return PlainText(str(text).encode(), CONTENT_TYPE)
