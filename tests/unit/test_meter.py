import threading

import pytest

from dct.comm.meter import ByteMeter, ChannelBytes, all_gather_bytes, ring_all_reduce_bytes


def test_ring_and_gather_payload_models():
    assert ring_all_reduce_bytes(1000, 1) == 0
    assert ring_all_reduce_bytes(1000, 4) == 1500
    assert all_gather_bytes(100, 4) == 300


def test_concurrent_records_are_all_counted():
    meter = ByteMeter()
    threads = [
        threading.Thread(target=lambda: [meter.record("dp", 1, 2) for _ in range(1000)])
        for _ in range(8)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert meter.totals()["dp"] == ChannelBytes(8000, 16000)
    assert meter.totals()["dp"].ratio == 2.0


def test_unknown_channel_is_refused():
    with pytest.raises(ValueError, match="unknown channel"):
        ByteMeter().record("pp", 1, 1)
