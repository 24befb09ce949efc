"""One stage of a pipeline replica: a GPipe training step over point-to-point links.

The stages of one replica sit on the ranks of its model-parallel group, stage ``i`` on MP rank
``i``, and all of them see the replica's whole batch: the first stage reads its dense features,
the stage with the interaction its ids, the last its labels. The batch is cut into equal
micro-batches; every micro-batch goes forward through all stages, then every micro-batch goes
backward in reverse order (GPipe), so each stage holds one micro-batch's activations per
micro-batch until its backward. Cut activations travel through a codec pair
(``dct.comm.point_to_point``): the dense identity, or DCT-MP's per-sample top-k forward with
gradients back at the same positions.

A small schedule of our own rather than ``torch.distributed.pipelining``: a stage's output must
stay one float tensor there, while a compressed cut sends values and integer positions and needs
the positions again in the backward pass; here the codec contexts simply stay on each side.
Sends and receives are blocking and every pair of neighbours posts them in the same order, so
the schedule cannot deadlock.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from dct.comm.codec import DENSE, CodecPair
from dct.comm.meter import ByteMeter
from dct.comm.point_to_point import Link, recv_rows, send_rows
from dct.data.batch import Batch
from models.stages import Stage


@dataclass
class _InFlight:
    """What a micro-batch left on this stage between its forward and its backward."""

    incoming: Tensor | None
    incoming_ctx: object
    output: Tensor
    output_ctx: object


class PipelineStage:
    """``stages[index]`` of a replica whose stages are the ranks of ``group`` in order.

    Example::

        stage = PipelineStage(stages, mp_rank, topology.mp_group, meter, codecs)
        loss = stage.step(batch, microbatches=4)  # gradients now in stage.module
        optimizer.step()
    """

    def __init__(
        self,
        stages: list[Stage],
        index: int,
        group: torch.distributed.ProcessGroup,
        meter: ByteMeter,
        codecs: CodecPair = DENSE,
    ) -> None:
        ranks = torch.distributed.get_world_size(group)
        if len(stages) != ranks:
            raise ValueError(
                f"{len(stages)} stages need {len(stages)} model-parallel ranks, the group has "
                f"{ranks}: give as many cuts as model-parallel ranks minus one"
            )
        self.module, self.index, self.codecs = stages[index], index, codecs
        self.in_width = None if index == 0 else stages[index - 1].out_width
        self.previous = None if index == 0 else Link(index - 1, group, meter)
        self.next = None if self.module.is_last else Link(index + 1, group, meter)

    def step(self, batch: Batch, microbatches: int) -> Tensor | None:
        """Forward and backward of ``batch`` in ``microbatches`` equal parts; the stage's
        gradients then hold those of the batch's mean loss. Returns that loss (detached) on the
        last stage, ``None`` elsewhere."""
        n = batch.num_samples
        if microbatches < 1 or n % microbatches:
            raise ValueError(
                f"a batch of {n} samples does not split into {microbatches} equal micro-batches"
            )
        size = n // microbatches
        flights = [
            self._forward(batch.rows(i * size, (i + 1) * size), n) for i in range(microbatches)
        ]
        for flight in reversed(flights):
            self._backward(flight, size)
        if not self.module.is_last:
            return None
        return torch.stack([flight.output.detach() for flight in flights]).sum()

    @torch.no_grad()
    def predict(self, batch: Batch) -> Tensor | None:
        """Forward only, the batch whole: logits on the last stage, ``None`` elsewhere."""
        _, _, output = self._run(batch)
        if self.module.is_last:
            return output
        send_rows(output, self.codecs.forward, None, self.next, "forward")
        return None

    def _run(self, micro: Batch) -> tuple[Tensor | None, object, Tensor]:
        """Receive this stage's input (if any) and apply the stage."""
        incoming, incoming_ctx = None, None
        if self.previous is not None:
            incoming, incoming_ctx = recv_rows(
                micro.num_samples,
                self.in_width,
                torch.float32,
                self.codecs.forward,
                None,
                self.previous,
                micro.dense.device,
            )
            incoming.requires_grad_(torch.is_grad_enabled())
        output = self.module(
            incoming,
            micro.dense if self.module.is_first else None,
            micro.sparse if self.module.reads_ids else None,
        )
        return incoming, incoming_ctx, output

    def _forward(self, micro: Batch, batch_size: int) -> _InFlight:
        incoming, incoming_ctx, output = self._run(micro)
        if self.module.is_last:
            summed = nn.functional.binary_cross_entropy_with_logits(
                output, micro.labels, reduction="sum"
            )
            return _InFlight(incoming, incoming_ctx, summed / batch_size, None)
        output_ctx = send_rows(output.detach(), self.codecs.forward, None, self.next, "forward")
        return _InFlight(incoming, incoming_ctx, output, output_ctx)

    def _backward(self, flight: _InFlight, size: int) -> None:
        if self.module.is_last:
            flight.output.backward()
        else:
            grad, _ = recv_rows(
                size,
                self.module.out_width,
                flight.output.dtype,
                self.codecs.backward,
                flight.output_ctx,
                self.next,
                flight.output.device,
            )
            flight.output.backward(grad)
        if self.previous is not None:
            send_rows(
                flight.incoming.grad,
                self.codecs.backward,
                flight.incoming_ctx,
                self.previous,
                "backward",
            )
