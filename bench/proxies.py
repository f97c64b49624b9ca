"""Zero-cost scores of an untrained network on one batch: cheap guesses of how well it will train.

Each takes a freshly initialized network, one batch of float images and their labels, and returns a
number that should grow with final accuracy. bench/rank_correlation.py measures how well each one
ranks trained candidates of a space against #params and FLOPs (ZiCo, ICLR 2023: most proxies do
not beat those two). On the quickstart's space none did (bench/README.md), so the search has no
pre-screen and these live with the benchmark.
  synflow   Tanaka et al. 2020: the sum of |θ · ∂R/∂θ| for R the output sum of the network with every
            weight made positive, on an all-ones input, in float64; returned as a logarithm.
  naswot    Mellor et al. 2021: log |K| for K the Hamming-similarity kernel of the batch's ReLU
            on/off patterns; networks that tell the images apart at init score high.
  grad_norm the L2 norm of the loss gradient over all weights, summed per tensor (Abdelfattah 2021).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

Proxy = Callable[[nn.Module, Tensor, Tensor], float]


def synflow(model: nn.Module, images: Tensor, labels: Tensor) -> float:
    model = model.double().eval()
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.abs_()
    model.zero_grad()
    model(torch.ones_like(images[:1], dtype=torch.float64)).sum().backward()
    with torch.no_grad():
        total = sum(float((p * p.grad).abs().sum()) for p in model.parameters() if p.grad is not None)
    return math.log(total) if total > 0 else -math.inf


def naswot(model: nn.Module, images: Tensor, labels: Tensor) -> float:
    n = len(images)
    kernel = torch.zeros(n, n, dtype=torch.float64)

    def record(module: nn.Module, inputs: object, output: Tensor) -> None:
        codes = (output.detach().flatten(1) > 0).double()
        kernel.add_(codes @ codes.T + (1 - codes) @ (1 - codes).T)

    hooks = [m.register_forward_hook(record) for m in model.modules() if isinstance(m, nn.ReLU)]
    try:
        with torch.no_grad():
            model.train()(images)
    finally:
        for hook in hooks:
            hook.remove()
    return float(torch.linalg.slogdet(kernel)[1])


def grad_norm(model: nn.Module, images: Tensor, labels: Tensor) -> float:
    model.train().zero_grad()
    F.cross_entropy(model(images), labels).backward()
    return sum(float(p.grad.norm()) for p in model.parameters() if p.grad is not None)


PROXIES: dict[str, Proxy] = {"synflow": synflow, "naswot": naswot, "grad_norm": grad_norm}
