"""SeriesGauge: the per-deployment gauges as one dict, exported as prometheus_client does."""

from __future__ import annotations

import math

import pytest
from prometheus_client import CollectorRegistry, Gauge, generate_latest

from costscaler.controller.metrics import SeriesGauge


def test_exported_text_is_prometheus_clients():
    ours, theirs = CollectorRegistry(), CollectorRegistry()
    light = SeriesGauge("x_cost", "Cost, $/h.", ["namespace", "deployment"], registry=ours)
    gauge = Gauge("x_cost", "Cost, $/h.", ["namespace", "deployment"], registry=theirs)
    for metric in (light, gauge):
        metric.labels("ml", "a").set(1.5)
        metric.labels("ml", "b").set(math.nan)
        metric.labels("ml", 'q"uote').set(2)
        metric.labels("ml", "gone").set(3)
        metric.labels("ml", "a").set(4)  # set again: one series
        metric.remove("ml", "gone")
    assert generate_latest(ours) == generate_latest(theirs)


def test_labels_and_remove_fail_as_prometheus_clients_do():
    light = SeriesGauge("y", "Y.", ["namespace", "deployment"], registry=CollectorRegistry())
    with pytest.raises(ValueError, match="labels"):
        light.labels("ml")
    with pytest.raises(KeyError):
        light.remove("ml", "never-set")


def test_a_name_registered_twice_is_refused():
    registry = CollectorRegistry()
    SeriesGauge("z", "Z.", ["deployment"], registry=registry)
    with pytest.raises(ValueError, match="Duplicated"):
        SeriesGauge("z", "Z.", ["deployment"], registry=registry)
