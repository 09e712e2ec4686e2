"""Training-step time of the baseline CNN with its pooling before or after the ReLU.

Max and ReLU commute, so both orders compute the same function; sweeplab's CNN pools first.
Each precision path is timed on one fixed random batch, the two orders alternating, and the
medians of the repeats after the first (a warm-up) are printed.

    python benchmarks/pool_order.py --batch-sizes 32 256
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from epoch_time import relu_before_pool
from torch import nn

from sweeplab.models.cnn import CNN

# name: (autocast to bf16, channels-last weights, fused Adam)
PATHS = {"bf16 channels-last": (True, True, True), "float32 NCHW": (False, False, False)}


def step_ms(net: nn.Module, batch_size: int, amp: bool, fused: bool, steps: int) -> float:
    images, labels = torch.randn(batch_size, 1, 28, 28), torch.randint(0, 10, (batch_size,))
    optimizer = torch.optim.Adam(net.parameters(), fused=fused or None)
    loss_fn = nn.CrossEntropyLoss()
    start = time.perf_counter()
    for _ in range(steps):
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp):
            loss = loss_fn(net(images), labels)
        loss.backward()
        optimizer.step()
    return (time.perf_counter() - start) / steps * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-sizes", nargs="+", type=int, default=[32, 256])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--steps", type=int, help="steps per timing (default: 3000 images)")
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    for batch_size in args.batch_sizes:
        steps = args.steps or max(3000 // batch_size, 5)
        for path, (amp, channels_last, fused) in PATHS.items():
            torch.manual_seed(0)
            nets = {"pool, ReLU": CNN(), "ReLU, pool": relu_before_pool(CNN())}
            if channels_last:
                nets = {k: v.to(memory_format=torch.channels_last) for k, v in nets.items()}
            times: dict[str, list[float]] = {order: [] for order in nets}
            for _ in range(args.repeats):
                for order, net in nets.items():
                    times[order].append(step_ms(net, batch_size, amp, fused, steps))
            ours, reference = (statistics.median(times[k][1:]) for k in nets)
            print(
                f"batch {batch_size}, {path}: pool then ReLU {ours:.2f} ms/step, "
                f"ReLU then pool {reference:.2f} ms/step, ratio {ours / reference:.3f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
