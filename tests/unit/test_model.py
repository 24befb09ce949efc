import torch
from torch import nn

from dct.data.batch import Batch, SparseFeatures
from models.dlrm import DLRM, DenseTower, DotInteraction
from models.sparse_arch import build_table


def jagged(bags: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    values = torch.tensor([i for bag in bags for i in bag], dtype=torch.long)
    offsets = torch.tensor([0] + [len(b) for b in bags]).cumsum(0)
    return values, offsets


def test_interaction_equals_naive_pairwise_dots():
    dense, pooled = torch.randn(3, 4), torch.randn(3, 5, 4)
    out = DotInteraction()(dense, pooled)
    for n in range(3):
        vectors = [dense[n], *pooled[n]]
        dots = [vectors[i] @ vectors[j] for i in range(len(vectors)) for j in range(i)]
        torch.testing.assert_close(out[n], torch.cat([dense[n], torch.stack(dots)]))


def test_multi_hot_bags_are_summed():
    table = build_table(20, 3, seed=1, table_index=0)
    values, offsets = jagged([[1, 4, 4], [], [7]])
    pooled = table(values, offsets)
    w = table.weight
    torch.testing.assert_close(pooled, torch.stack([w[1] + 2 * w[4], torch.zeros(3), w[7]]))


def test_initialisation_depends_on_seed_and_table_index_only():
    model = DLRM(13, [8, 4], [30, 50, 20], [8], seed=5)
    for index, rows in enumerate([30, 50, 20]):
        alone = build_table(rows, 4, seed=5, table_index=index)
        assert torch.equal(alone.weight, model.sparse_arch.tables[index].weight)
    assert not torch.equal(build_table(30, 4, 5, 0).weight[:20], build_table(20, 4, 5, 2).weight)
    tower = DenseTower(13, [8, 4], 3, [8], seed=5)
    for a, b in zip(tower.parameters(), model.dense_tower.parameters()):
        assert torch.equal(a, b)
    other = DenseTower(13, [8, 4], 3, [8], seed=6)
    assert not torch.equal(next(other.parameters()), next(tower.parameters()))


def test_dlrm_gives_one_logit_per_sample_and_learns():
    bags = [jagged([[i % 30] for i in range(16)]), jagged([[i % 7, 3] for i in range(16)])]
    batch = Batch(
        dense=torch.rand(16, 13),
        sparse=SparseFeatures(tuple(v for v, _ in bags), tuple(o for _, o in bags)),
        labels=(torch.arange(16) % 2).float(),
    )
    model = DLRM(13, [8, 4], [30, 7], [8], seed=0)
    optimizer = torch.optim.Adagrad(model.parameters(), lr=0.1)
    losses = []
    for _ in range(60):
        loss = nn.functional.binary_cross_entropy_with_logits(model(batch), batch.labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert model(batch).shape == (16,)
    assert losses[-1] < 0.5 * losses[0]


def test_a_row_block_built_alone_equals_those_rows_of_the_whole_table():
    from models.sparse_arch import INIT_CHUNK_ROWS

    rows = 2 * INIT_CHUNK_ROWS + 300
    whole = build_table(rows, 2, seed=4, table_index=3).weight
    for block in [range(0, 10), range(5, INIT_CHUNK_ROWS + 7), range(INIT_CHUNK_ROWS, rows)]:
        alone = build_table(rows, 2, seed=4, table_index=3, rows=block).weight
        assert torch.equal(alone, whole[block.start : block.stop])
    assert whole.abs().max() <= 1 / rows**0.5
