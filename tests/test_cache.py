"""The generated-data cache: reuse, corruption and staleness detection, atomic writes."""

import logging

import torch

from dlapps.data.cache import cache_path, cached


def _builder(calls):
    def build():
        calls.append(1)
        return {"x": torch.arange(12, dtype=torch.uint8).view(3, 4), "y": torch.tensor([1, 2, 3])}

    return build


def test_cache_reuses_a_good_file(tmp_path):
    calls = []
    a = cached("thing", {"seed": 1}, _builder(calls), root=tmp_path)
    b = cached("thing", {"seed": 1}, _builder(calls), root=tmp_path)
    assert len(calls) == 1 and torch.equal(a["x"], b["x"])
    assert not list((tmp_path / "cache").glob("*.tmp"))


def test_other_parameters_build_another_file(tmp_path):
    calls = []
    cached("thing", {"seed": 1}, _builder(calls), root=tmp_path)
    cached("thing", {"seed": 2}, _builder(calls), root=tmp_path)
    assert len(calls) == 2
    assert cache_path("thing", {"seed": 1}, tmp_path) != cache_path("thing", {"seed": 2}, tmp_path)


def test_corrupt_file_is_detected_and_rebuilt(tmp_path, caplog):
    calls = []
    cached("thing", {"seed": 1}, _builder(calls), root=tmp_path)
    path = cache_path("thing", {"seed": 1}, tmp_path)
    path.write_bytes(path.read_bytes()[:100])  # truncated
    with caplog.at_level(logging.WARNING):
        out = cached("thing", {"seed": 1}, _builder(calls), root=tmp_path)
    assert len(calls) == 2 and "unreadable" in caplog.text
    assert out["y"].tolist() == [1, 2, 3]


def test_tampered_tensor_fails_checksum(tmp_path, caplog):
    calls = []
    cached("thing", {"seed": 1}, _builder(calls), root=tmp_path)
    path = cache_path("thing", {"seed": 1}, tmp_path)
    payload = torch.load(path, weights_only=True)
    payload["tensors"]["x"][0, 0] = 99  # a flipped byte, checksum left as it was
    torch.save(payload, path)
    with caplog.at_level(logging.WARNING):
        out = cached("thing", {"seed": 1}, _builder(calls), root=tmp_path)
    assert len(calls) == 2 and "checksum" in caplog.text and out["x"][0, 0] == 0


def test_stale_parameters_inside_the_file_are_detected(tmp_path, caplog):
    calls = []
    cached("thing", {"seed": 1}, _builder(calls), root=tmp_path)
    path = cache_path("thing", {"seed": 1}, tmp_path)
    payload = torch.load(path, weights_only=True)
    payload["params"] = '{"seed": 0}'
    torch.save(payload, path)
    with caplog.at_level(logging.WARNING):
        cached("thing", {"seed": 1}, _builder(calls), root=tmp_path)
    assert len(calls) == 2 and "stale" in caplog.text


def test_scalar_tensors_are_cached_and_checked(tmp_path):
    calls = []
    build = lambda: (calls.append(1), {"acc": torch.tensor(0.97), "n": torch.tensor(5)})[1]  # noqa: E731
    a = cached("scalars", {}, build, root=tmp_path)
    b = cached("scalars", {}, build, root=tmp_path)
    assert len(calls) == 1 and float(b["acc"]) == float(a["acc"]) and b["acc"].shape == ()
