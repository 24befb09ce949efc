"""The de-duplicated all-to-all against the exchange it replaces: every sample's row sent;
training with it against training without.

Each rank pools seeded bags (single-hot, multi-hot, empty, all alike; samples per rank even or
not, one rank with none) and sends its distinct vectors with their sample index; the reference
expands them on the sender and sends every row. Forward blocks and the gradients reaching the
distinct vectors are bitwise equal (the duplicates' gradients are summed by the same
``index_select`` backward, on the receiver instead of the sender). Bytes are counted by hand:
distinct rows in fp32, counts and the bit-packed index, against every row in fp32.
"""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
import torch.distributed as dist

from dct.comm.all_to_all import RowExchange, all_to_all_rows
from dct.comm.codec import DENSE, CodecPair
from dct.comm.dedup_all_to_all import DedupRows, all_to_all_dedup, expand
from dct.comm.meter import ByteMeter
from dct.comm.quantized_codecs import QuantizedRows
from dct.compression.bit_pack import bits_for, packed_bytes
from dct.config import DCTConfig, DCTMPConfig
from dct.data.batch import SparseFeatures
from dct.parallel.embedding_dedup import pool_dedup
from dct.parallel.topology import Topology, grid_shape
from dct.train.loop import train
from dct.train.summary import summary_metrics
from tests.distributed.spawn import run_ranks
from tests.distributed.test_golden import small_config

DIM, ROWS = 4, 5
TABLES = [2, 1, 3, 2]  # tables rank r holds


def bags(case: str, samples: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """One table's bags for ``samples`` samples: ``(values, offsets)``."""
    g = torch.Generator().manual_seed(seed)
    if case == "empty bags":
        lengths = torch.zeros(samples, dtype=torch.long)
    elif case == "multi-hot":
        lengths = torch.randint(0, 4, (samples,), generator=g)
    else:
        lengths = torch.ones(samples, dtype=torch.long)
    values = torch.randint(0, ROWS, (int(lengths.sum()),), generator=g)
    if case == "all duplicates":
        values.fill_(3)
    return values, torch.cat([torch.zeros(1, dtype=torch.long), lengths.cumsum(0)])


def samples_of(case: str, world: int) -> list[int]:
    return [3, 0, 7, 2][:world] if case == "uneven samples" else [6] * world


def distinct_for(me: int, world: int, case: str, tables: list[torch.nn.Module]) -> DedupRows:
    """This rank's distinct vectors, destination by destination."""
    parts = []
    for j, n in enumerate(samples_of(case, world)):
        values, offsets = zip(*(bags(case, n, 1000 * me + 10 * j + t) for t in range(len(tables))))

        def pool(sparse: SparseFeatures) -> torch.Tensor:
            pairs = zip(tables, sparse.values, sparse.offsets)
            return torch.cat([t(v, o) for t, v, o in pairs], dim=1)

        parts.append(pool_dedup(SparseFeatures(values, offsets), 1, DIM, pool))
    return DedupRows(
        torch.cat([p.rows for p in parts]).detach().requires_grad_(),
        torch.cat([p.index for p in parts]),
        torch.cat([p.counts for p in parts]),
    )


def exchange_rank(case: str, quantized: bool) -> dict:
    me, world = dist.get_rank(), dist.get_world_size()
    group = dist.group.WORLD
    torch.manual_seed(me)
    tables = [
        torch.nn.EmbeddingBag(ROWS, DIM, mode="sum", include_last_offset=True)
        for _ in range(TABLES[me])
    ]
    sent = distinct_for(me, world, case, tables)
    samples, widths = samples_of(case, world), TABLES[:world]
    codecs = CodecPair(QuantizedRows(8), QuantizedRows(8)) if quantized else DENSE
    meter, reference_meter = ByteMeter(), ByteMeter()
    got = all_to_all_dedup(sent, samples, widths, DIM, group, meter, codecs)

    # The reference: the sender expands (through the codec's round trip when quantized).
    rows = sent.rows
    if quantized:
        codec = codecs.forward
        rows = codec.decode(codec.encode(rows, None)[0], DIM, rows.dtype, None)[0]
    counts = sent.counts.sum(1).tolist()
    expanded = torch.cat(
        [
            expand(r, i, c)
            for r, i, c in zip(rows.split(counts), sent.index.split(samples), sent.counts)
        ]
    )
    spec = RowExchange(
        send_rows=samples,
        recv_rows=[samples[me]] * world,
        widths=[t * DIM for t in widths],
        group=group,
        meter=reference_meter,
    )
    want = all_to_all_rows(expanded, spec)

    # The quantized reference's rows are not the leaf: only the exchange's backward runs.
    grads = []
    for blocks in (got,) if quantized else (got, want):
        weights = [
            torch.randn(b.shape, generator=torch.Generator().manual_seed(7 * me + s))
            for s, b in enumerate(blocks)
        ]
        loss = sum((b * w).sum() for b, w in zip(blocks, weights))
        grads.append(torch.autograd.grad(loss, sent.rows)[0])
    return {
        "got": [b.detach() for b in got],
        "want": [b.detach() for b in want],
        "grads": grads,
        "counts": sent.counts,
        "bytes": meter.totals(),
        "reference_bytes": reference_meter.totals(),
    }


CASES = ["single-hot", "multi-hot", "empty bags", "all duplicates", "uneven samples"]


def exchange_cases(cases: list[tuple[str, bool]]) -> list[dict]:
    return [exchange_rank(case, quantized) for case, quantized in cases]


@pytest.fixture(scope="module", params=[2, 4])
def exchanged(request, tmp_path_factory):
    """Per world size, every rank's result of every case (one spawn for all of them)."""
    world = request.param
    cases = [(case, False) for case in CASES] + [("single-hot", True)]
    results = run_ranks(world, exchange_cases, cases, tmp_dir=tmp_path_factory.mktemp("x"))
    by_case = {case: [rank[i] for rank in results] for i, case in enumerate(cases)}
    return world, by_case


@pytest.mark.parametrize("case", CASES)
def test_dedup_exchange_equals_sending_every_row(exchanged, case):
    world, by_case = exchanged
    results = by_case[case, False]
    samples = samples_of(case, world)
    for me, r in enumerate(results):
        for got, want in zip(r["got"], r["want"]):
            assert torch.equal(got, want)
        assert torch.equal(r["grads"][0], r["grads"][1])
        others = [j for j in range(world) if j != me]
        # Counts as int32 per table, then each table's column in the bits its count needs.
        index_bytes = sum(
            4 * TABLES[me] + packed_bytes(samples[j], [bits_for(c) for c in r["counts"][j]])
            for j in others
        )
        forward = 4 * DIM * sum(int(r["counts"][j].sum()) for j in others)
        backward = 4 * DIM * sum(int(results[s]["counts"][me].sum()) for s in others)
        totals, reference = r["bytes"], r["reference_bytes"]
        assert totals["mp_index"].sent == index_bytes
        assert totals["mp_forward"].sent == forward
        assert totals["mp_backward"].sent == backward
        assert totals["mp"].sent == index_bytes + forward + backward
        assert totals["mp"].dense == reference["mp"].sent == reference["mp"].dense
        if case == "all duplicates":
            assert r["counts"].tolist() == [[1] * TABLES[me]] * world


def test_dedup_composes_with_a_quantized_codec(exchanged):
    """int8: the receiver's blocks are the sender's distinct vectors quantized, rebuilt and
    expanded; each distinct vector costs its codes plus a 4-byte scale and offset."""
    world, by_case = exchanged
    results = by_case["single-hot", True]
    for me, r in enumerate(results):
        for got, want in zip(r["got"], r["want"]):
            torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-7)
        others = [j for j in range(world) if j != me]
        forward = (DIM + 8) * sum(int(r["counts"][j].sum()) for j in others)
        backward = (DIM + 8) * sum(int(results[s]["counts"][me].sum()) for s in others)
        assert r["bytes"]["mp_forward"].sent == forward
        assert r["bytes"]["mp_backward"].sent == backward


def train_with_dedup(settings: list[tuple[bool, str]]) -> dict:
    """The golden test's model on 2 MP ranks (one table cut in row blocks), per setting."""
    out = {}
    for dedup, codec in settings:
        cfg = small_config(2, "sgd", "sgd")
        cfg = replace(cfg, dct=DCTConfig(mp=DCTMPConfig(codec=codec, dedup=dedup)))
        topology = Topology(grid_shape(cfg, dist.get_world_size()), "cpu")
        result = train(cfg, topology, torch.device("cpu"))
        out[dedup, codec] = (result.losses, summary_metrics(result, cfg, topology))
    return out


def test_training_with_dedup_follows_training_without(tmp_path):
    """The first step's loss is bitwise the same (the forward pass is); later ones differ only
    by the order the tables' gradients are summed in. Dense bytes are those of sending every
    row; the share left out and the index are reported."""
    settings = [(False, "dense"), (True, "dense"), (True, "int8")]
    runs = run_ranks(2, train_with_dedup, settings, tmp_dir=tmp_path)[0]
    (plain_losses, plain), (losses, dedup), (_, int8) = (runs[s] for s in settings)
    assert losses[0] == plain_losses[0]
    torch.testing.assert_close(torch.tensor(losses), torch.tensor(plain_losses), rtol=1e-4, atol=0)
    assert dedup["auc"] == pytest.approx(plain["auc"], abs=1e-4)
    assert plain["mp_dedup_share"] is None and 0 < dedup["mp_dedup_share"] < 1
    for m in (dedup, int8):
        assert m["mp_bytes_dense"] == plain["mp_bytes_dense"]
        parts = sum(m[f"mp_{part}_bytes_sent"] for part in ("forward", "backward", "index"))
        assert m["mp_bytes_sent"] == parts and m["mp_index_bytes_sent"] > 0
    assert plain["mp_ratio"] == 1.0 < dedup["mp_ratio"] < int8["mp_ratio"]
    assert int8["mp_dedup_share"] == dedup["mp_dedup_share"]
