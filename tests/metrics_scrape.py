"""Reading /metrics as Prometheus would: the text format parsed by prometheus-client's own
parser into samples, so that tests compare values (and their changes), never text."""

from __future__ import annotations

from collections.abc import Mapping

from prometheus_client.parser import text_string_to_metric_families

Key = tuple[str, frozenset[tuple[str, str]]]


class Samples(dict[Key, float]):
    def value(self, name: str, **labels: str) -> float:
        """The sample with exactly these labels (0 when it does not exist yet)."""
        return self.get((name, frozenset(labels.items())), 0.0)

    def label_sets(self, name: str) -> set[frozenset[str]]:
        """The label names each sample of `name` carries."""
        return {frozenset(k for k, _ in labels) for n, labels in self if n == name}

    def values_of(self, name: str, label: str) -> set[str]:
        return {dict(labels)[label] for n, labels in self if n == name and label in dict(labels)}

    def names(self) -> set[str]:
        return {name for name, _ in self}


def parse(text: str) -> Samples:
    samples = Samples()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def changes(before: Mapping[Key, float], after: Mapping[Key, float]) -> Samples:
    """What moved between two scrapes (counters and histograms only grow)."""
    moved = Samples()
    for key, value in after.items():
        if value != before.get(key, 0.0):
            moved[key] = value - before.get(key, 0.0)
    return moved
