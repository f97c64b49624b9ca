"""One training run on Fashion-MNIST: the loop, mixed precision, aux losses, metrics, the pruning hook.

Precision: bf16 autocast (where `uses_bf16` says it pays) is for the training steps and the per-epoch
validation scores in `history` only, and metrics.json says so in `train_precision`. The final
`val_accuracy` and `test_accuracy` are measured the way `evaluate` and the exported file run the
network: fp32, eval mode, NCHW, in batches of `train.batch_size`. So `evaluate` reproduces them exactly.

`train_run` is what `sandbox train` and the search call. The data stays on the device when it fits
(else on the host, `sandbox.train.data`): an epoch is one permutation, then batches gathered by it
and augmented on the device. The epoch's figures (training loss and accuracy, validation loss and
accuracy) are summed on the device and read back together once per epoch (one device sync), which is
also where a non-finite loss stops the run.

What `history` holds per epoch, and how each figure is measured without changing training: `loss`
and `train_accuracy` are the means over the epoch's steps, from the logits each step already
computes (in train mode, augmented, mixed where mixup or cutmix is on: then against the larger of
the two labels), so they lag the end-of-epoch network; `val_loss` (plain cross-entropy, no label
smoothing) and `val_accuracy` come from one eval-mode pass over the validation split; `lr_peak` and
`lr_mean` are the highest and the mean learning rate the epoch's steps used (the rate after the
last step, which reads 0 at the end of a cosine schedule, is not what the epoch trained with).

The recipe's extras (`sandbox.train.augment`, `.finetune`, `.checkpoint`, `.history`) cost nothing
when off, the default: no per-step work, and no checkpoint, event file or plot unless asked for.
With EMA on (`train.ema`), the EMA weights are what is validated each epoch, measured at the end
and saved. A run directory gets history.csv as the epochs end; `watch` (what `sandbox train` asks)
adds TensorBoard events and curves.png, and `resume` continues from its checkpoint.

Determinism: the same seed on the same CPU with the same thread count gives the same metrics.
On CUDA, cuDNN's autotuned kernels and atomic adds in some backward kernels make runs differ in the
last bits, which can move accuracies slightly; initialization, dropout, batch order and
augmentation come from seeded generators and do not vary.
"""

from __future__ import annotations

import functools
import gc
import math
import sys
import time
import traceback
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
import torch.nn.functional as F
from timm.loss import SoftTargetCrossEntropy
from timm.optim import create_optimizer_v2
from timm.scheduler import create_scheduler_v2
from timm.utils import ModelEmaV3, dispatch_clip_grad
from torch import Tensor, nn
from tqdm import tqdm

from sandbox.errors import SandboxError
from sandbox.model.builder import InceptionNet, build
from sandbox.model.flops import FLOPS_CONVENTION, count
from sandbox.paired import pack
from sandbox.runs import concrete_raw, prepare, write_metrics, write_spec, write_weights
from sandbox.spec.load import Spec
from sandbox.spec.recipe import TrainConfig
from sandbox.spec.schema import TOP_LEVEL_KEYS
from sandbox.train.augment import Augmenter, mixer
from sandbox.train.checkpoint import TrainingState, load_checkpoint, save_checkpoint
from sandbox.train.data import Data, Split, load_for, to_float
from sandbox.train.device import resolve_device, uses_bf16
from sandbox.train.finetune import check_freeze, freeze, load_init, read_init, unfreeze
from sandbox.train.history import RunLog

EpochHook = Callable[[int, dict[str, Any]], None]
Say = Callable[[str], None]
LOSS_SHOWN_EVERY = 0.5  # seconds between the progress bar's running-loss updates (each one a device sync)


class TrainingError(SandboxError):
    """A run that cannot go on (non-finite loss, out of memory); a search marks the trial failed."""


def train_run(
    spec: Spec,
    *,
    out_dir: Path | None = None,
    epochs: int | None = None,
    device: str = "auto",
    seed: int | None = None,
    data_dir: Path | None = None,
    on_epoch: EpochHook | None = None,
    progress: bool | None = None,
    resume: bool = False,
    watch: bool = False,
    say: Say | None = None,
) -> dict[str, Any]:
    """Train `spec` on its dataset and return the metrics (also written to `out_dir/metrics.json`).

    `on_epoch(epoch_index, record)` runs after every epoch; whatever it raises (a search's
    `optuna.TrialPruned`) ends the run before any weights or metrics are written. `resume`
    continues the run in `out_dir` from its checkpoint; `watch` writes TensorBoard events and
    curves.png there; `say` gets what the run reports in words (fine-tuning, resuming).
    """
    started = time.perf_counter()
    config = spec.train.with_overrides(epochs=epochs, seed=seed)
    dev = resolve_device(device)
    if resume and out_dir is None:
        raise ValueError("resume needs the run directory (out_dir) to continue")
    files = _RunFiles(resume=resume, watch=watch, say=say or (lambda line: None))
    try:
        return _run(spec, config, dev, out_dir, data_dir, on_epoch, progress, started, files)
    except torch.OutOfMemoryError as err:
        traceback.clear_frames(err.__traceback__)  # they hold the model, its gradients and activations
        raise TrainingError(
            f"out of memory on {dev} with batch_size {config.batch_size}: "
            "lower train.batch_size or use a smaller network"
        ) from err
    except BaseException as err:  # a pruned or failed trial: its traceback must not keep the model alive
        traceback.clear_frames(err.__traceback__)
        raise
    finally:
        release(dev, compiled=config.compile is not False)


def release(device: torch.device, *, compiled: bool) -> None:
    """Give back what a finished run held, so the next trial in this worker starts from nothing:
    unreachable model and optimizer cycles, the CUDA caching allocator's blocks, compiled graphs."""
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
    if compiled:
        torch._dynamo.reset()  # else every trial's graphs stay cached and count against the recompile limit


@dataclass
class _RunFiles:
    """What a run keeps in its directory besides the weights and metrics, and how it speaks."""

    resume: bool
    watch: bool
    say: Say
    out_dir: Path | None = None
    identity: dict[str, Any] = field(default_factory=dict)  # what a checkpoint must match to be resumed
    checkpoint: dict[str, Any] | None = None  # the one resumed from


def _run(
    spec: Spec,
    config: TrainConfig,
    dev: torch.device,
    out_dir: Path | None,
    data_dir: Path | None,
    on_epoch: EpochHook | None,
    progress: bool | None,
    started: float,
    files: _RunFiles,
) -> dict[str, Any]:
    if out_dir is not None:
        out_dir = prepare(Path(out_dir))
    files.out_dir, files.identity = out_dir, {"spec": concrete_raw(spec), "train": asdict(config)}
    if files.resume and out_dir is not None:  # before the data loads: a refusal costs nothing
        files.checkpoint = load_checkpoint(out_dir, files.identity)
        files.say(f"resuming {out_dir} after epoch {len(files.checkpoint['history'])} of {config.epochs}")
    init_state = read_init(config.init) if config.init is not None and files.checkpoint is None else None
    if config.freeze:
        check_freeze(build(spec, device="meta"), config.freeze)
    data = load_for(spec, dev, data_dir)  # converted and resized to the spec's input; its classes checked
    config = config.fitted_to(len(data.train), files.say)
    spec, normalized_by = normalized(spec, data, files.checkpoint)
    files.identity = {**files.identity, "spec": concrete_raw(spec)}  # a checkpoint records the statistics used
    if out_dir is not None:
        write_spec(out_dir, concrete_raw(spec))

    counts = count(spec)
    torch.manual_seed(config.seed)
    model = build(spec, device=dev)
    init = None
    if config.init is not None and files.checkpoint is None:  # a resumed run has its weights in the checkpoint
        init = load_init(model, config.init, init_state)
        for line in init.lines():
            files.say(line)
    freeze(model, config.freeze)
    bf16 = uses_bf16(config.precision, dev)
    if config.channels_last:
        model = model.to(memory_format=torch.channels_last)
    if dev.type == "cuda":
        torch.backends.cudnn.benchmark = True
    bar = sys.stderr.isatty() if progress is None else progress
    history, model = _fit(model, data, config, dev, bf16, on_epoch, bar, files)  # the EMA's network when on
    unfreeze(model, config.freeze)  # plain batch norms, so the weights load where the spec builds
    model = model.to(memory_format=torch.contiguous_format)  # from here on, as `evaluate` and the export run it
    val_correct = correct(model, data.val, batch=config.batch_size)
    test_correct = correct(model, data.test, batch=config.batch_size)
    timed = history[1:] or history  # the first epoch includes warm-up (and compilation)
    metrics = {
        "name": spec.name,
        "test_accuracy": float(test_correct.mean()),
        "val_accuracy": float(val_correct.mean()),
        "correct": {"val": pack(val_correct), "test": pack(test_correct)},  # per image, `sandbox.paired`
        "eval_precision": "fp32",
        "train_images_per_second": sum(r["images"] for r in timed) / sum(r["seconds"] for r in timed),
        "epochs": config.epochs,
        "params": counts.params,
        "flops": counts.flops,
        "flops_convention": FLOPS_CONVENTION,
        "device": str(dev),
        "device_name": torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu",
        "train_precision": "bf16" if bf16 else "fp32",
        "threads": torch.get_num_threads(),
        "seed": config.seed,
        "seconds": time.perf_counter() - started,
        "dataset": data.counts(),
        "normalize": {"mean": list(spec.mean), "std": list(spec.std), "source": normalized_by},
        "train": asdict(config),
        "history": history,
    }
    if init is not None:
        metrics["init"] = init.summary()
    if files.checkpoint is not None:
        metrics["resumed_after_epoch"] = len(files.checkpoint["history"])
    if out_dir is not None:
        write_weights(out_dir, model)
        write_metrics(out_dir, metrics)
    return metrics


def normalized(spec: Spec, data: Data, checkpoint: Mapping[str, Any] | None) -> tuple[Spec, str]:
    """The spec as it trains, and where its normalization comes from, in words. `normalize:` unset
    means the dataset's own statistics (`Data.normalization`), written into the run's spec.yaml so
    that evaluate, predict and the export normalize alike; a resumed run keeps those its checkpoint
    trained with (a checkpoint from before they were recorded: the spec's default, as it trained)."""
    if "normalize" in spec.raw:
        return spec, "the spec's normalize:"
    if checkpoint is not None:
        chosen = checkpoint["identity"]["spec"].get("normalize")
        if chosen is None:
            return spec, "the spec's default (Fashion-MNIST's), as the checkpoint was trained"
        source = "the checkpoint's"
    else:
        assert data.normalization is not None  # `load` always measures it
        chosen = {"mean": list(data.normalization.mean), "std": list(data.normalization.std)}
        source = data.normalization.source
    raw = {**spec.raw, "normalize": chosen}
    raw = {key: raw[key] for key in TOP_LEVEL_KEYS if key in raw}  # spec.yaml in the usual order
    return replace(spec, mean=tuple(chosen["mean"]), std=tuple(chosen["std"]), raw=raw), source


def _loss_function(
    model: InceptionNet, config: TrainConfig, bf16: bool, device: torch.device, *, soft: bool = False
) -> Callable[..., tuple[Tensor, Tensor]]:
    """Main loss plus the weighted aux losses, under autocast; compiled when `train.compile` asks.

    `soft`: the targets are mixup's soft labels (label smoothing already in them), scored by timm's
    SoftTargetCrossEntropy."""
    aux_weights = [config.aux_weight if config.aux_weight is not None else w for w in model.aux_weights]
    criterion: Callable[[Tensor, Tensor], Tensor] = (
        SoftTargetCrossEntropy() if soft else functools.partial(F.cross_entropy, label_smoothing=config.label_smoothing)
    )

    def loss_of(x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        """The loss, and the main head's logits (detached) for the training accuracy."""
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            logits, aux_logits = model.forward_with_aux(x)
            loss = criterion(logits, y)
            for weight, aux in zip(aux_weights, aux_logits, strict=True):
                loss = loss + weight * criterion(aux, y)
        return loss, logits.detach()

    if config.compile is False:
        return loss_of
    compiled = torch.compile(loss_of, mode=None if config.compile is True else config.compile)

    def step_loss(x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        torch.compiler.cudagraph_mark_step_begin()  # lets CUDA-graph modes reuse their memory each step
        return compiled(x, y)

    return step_loss


def optimizer_and_scheduler(model: nn.Module, config: TrainConfig, steps: int) -> tuple[Any, Any]:
    """The recipe's optimizer and its per-step schedule (`steps` updates an epoch): also what the
    one-shot supernet trains with (`sandbox.search.oneshot.train`)."""
    optimizer = create_optimizer_v2(
        model, opt=config.optimizer, lr=config.lr, weight_decay=config.weight_decay, momentum=config.momentum
    )
    scheduler, _ = create_scheduler_v2(
        optimizer,
        sched=config.schedule,
        num_epochs=config.epochs,
        warmup_epochs=config.warmup_epochs,  # type: ignore[arg-type]  # timm says int; a float works (x updates_per_epoch)
        min_lr=config.min_lr,
        step_on_epochs=False,
        updates_per_epoch=steps,
    )
    return optimizer, scheduler


def _fit(
    model: InceptionNet,
    data: Data,
    config: TrainConfig,
    device: torch.device,
    bf16: bool,
    on_epoch: EpochHook | None,
    progress: bool,
    files: _RunFiles,
) -> tuple[list[dict[str, Any]], InceptionNet]:
    """The epochs (from the checkpoint's on, when resumed): their history, and the network to measure and save."""
    batch = min(config.batch_size, len(data.train))
    steps = len(data.train) // batch  # the last partial batch is dropped: every step has one shape
    optimizer, scheduler = optimizer_and_scheduler(model, config, steps)
    mix = mixer(config.augment, classes=model.spec.classes, label_smoothing=config.label_smoothing, batch=batch,
                seed=config.seed)  # fmt: skip
    loss_of = _loss_function(model, config, bf16, device, soft=mix is not None)
    generator = torch.Generator(device=device).manual_seed(config.seed)
    augmenter = Augmenter(config.augment, generator)
    ema = None if config.ema is None else ModelEmaV3(model, decay=config.ema, use_warmup=config.ema_warmup)
    clip = None
    if config.clip_grad is not None:
        trained = [p for p in model.parameters() if p.requires_grad]
        clip = functools.partial(dispatch_clip_grad, trained, config.clip_grad, mode=config.clip_mode)
    state = TrainingState(model, optimizer, scheduler, ema, generator, device)
    history = [] if files.checkpoint is None else state.restore(files.checkpoint)
    evaluated = model if ema is None else cast(InceptionNet, ema.module)  # a deep copy of `model`
    log = None if files.out_dir is None else RunLog(files.out_dir, history, watch=files.watch, say=files.say)
    for epoch in range(len(history), config.epochs):
        _synchronize(device)
        began = time.perf_counter()
        model.train()
        order = torch.randperm(len(data.train), device=device, generator=generator)[: steps * batch]
        loss_sum = torch.zeros((), device=device)
        right = torch.zeros((), dtype=torch.int64, device=device)  # training images classified right
        rates: list[float] = []  # the learning rate each step used
        bar = tqdm(total=steps, desc=f"epoch {epoch + 1}/{config.epochs}", unit="batch", leave=False,
                   disable=not progress, file=sys.stderr)  # fmt: skip
        shown = began
        for step, (images, labels) in enumerate(data.train.batches(order, batch)):  # on the device, either path
            x, y = to_float(augmenter(images), channels_last=config.channels_last), labels
            if mix is not None:
                x, y = mix(x, y)
            loss, logits = loss_of(x, y)
            right += (logits.argmax(1) == (y.argmax(1) if y.dim() > 1 else y)).sum()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if clip is not None:
                clip()
            rates.append(optimizer.param_groups[0]["lr"])
            optimizer.step()
            update = epoch * steps + step + 1
            if ema is not None:
                ema.update(model, step=update)
            loss_sum += loss.detach()
            if scheduler is not None:
                scheduler.step_update(update)
            bar.update()
            if progress and time.perf_counter() - shown > LOSS_SHOWN_EVERY:  # a sync: only with the bar shown
                bar.set_postfix(loss=f"{loss_sum.item() / (step + 1):.4f}", refresh=False)
                shown = time.perf_counter()
        _synchronize(device)  # the steps' time alone: images/s leaves validation out
        seconds = time.perf_counter() - began
        bar.close()
        val = _scores(evaluated, data.val, batch=batch, bf16=bf16, channels_last=config.channels_last)
        sums = torch.stack([loss_sum.double(), right.double(), *(v.double() for v in val)]).tolist()  # one read
        mean_loss = sums[0] / steps
        if not math.isfinite(mean_loss):
            raise TrainingError(
                f"the training loss became {mean_loss} in epoch {epoch + 1}: lower train.lr (now {config.lr}) "
                "or check the network for unstable layers"
            )
        record = {
            "epoch": epoch + 1,
            "loss": mean_loss,
            "train_accuracy": sums[1] / (steps * batch),
            "val_loss": sums[2] / len(data.val),
            "val_accuracy": sums[3] / len(data.val),
            "lr_peak": max(rates),
            "lr_mean": sum(rates) / len(rates),
            "images_per_second": steps * batch / seconds,
            "images": steps * batch,
            "seconds": seconds,
        }
        history.append(record)
        if log is not None:
            log.add(record)
        if files.out_dir is not None and config.checkpoint_every and (epoch + 1) % config.checkpoint_every == 0:
            save_checkpoint(files.out_dir, files.identity, state, history)
            assert log is not None
            log.plot(history)
        if on_epoch is not None:
            on_epoch(epoch, record)
    if log is not None:
        log.plot(history)
        log.close()
    return history, evaluated


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@torch.no_grad()
def _logits(
    model: nn.Module, split: Split, *, batch: int, bf16: bool, channels_last: bool
) -> Iterator[tuple[int, Tensor]]:
    """(start, logits) for a whole split in eval mode, batch by batch (the model is left in eval mode).

    Every forward pass has the training batch's shape, the last one padded with blank images:
    cuDNN then autotunes no new shapes (one per evaluation size and remainder), and `evaluate`,
    which predicts with the spec's batch size too, runs the very same kernels as training did.
    """
    model.eval()
    for start in range(0, len(split), batch):
        images = split.window(start, start + batch)
        short = batch - len(images)
        if short:
            images = torch.cat([images, images.new_zeros((short, *images.shape[1:]))])
        x = to_float(images, channels_last=channels_last)
        with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=bf16):
            yield start, model(x)[: batch - short]


def predict(model: nn.Module, split: Split, *, batch: int, bf16: bool = False, channels_last: bool = False) -> Tensor:
    """Predicted classes for a whole split, in eval mode (the model is left in eval mode)."""
    found = _logits(model, split, batch=batch, bf16=bf16, channels_last=channels_last)
    return torch.cat([logits.argmax(1) for _, logits in found])


def _scores(model: nn.Module, split: Split, *, batch: int, bf16: bool, channels_last: bool) -> tuple[Tensor, Tensor]:
    """The summed cross-entropy and the count classified right, from one pass, left on the device
    (the caller reads them back with the training figures, in one sync)."""
    loss = torch.zeros((), dtype=torch.float64, device=split.device)
    right = torch.zeros((), dtype=torch.int64, device=split.device)
    for start, logits in _logits(model, split, batch=batch, bf16=bf16, channels_last=channels_last):
        labels = split.labels[start : start + len(logits)]
        loss += F.cross_entropy(logits.float(), labels, reduction="sum")
        right += (logits.argmax(1) == labels).sum()
    return loss, right


def correct(model: nn.Module, split: Split, *, batch: int) -> np.ndarray:
    """Which images of the split the model classifies right (fp32, in split order)."""
    return (predict(model, split, batch=batch) == split.labels).cpu().numpy()


def accuracy(model: nn.Module, split: Split, *, batch: int, bf16: bool = False, channels_last: bool = False) -> float:
    predicted = predict(model, split, batch=batch, bf16=bf16, channels_last=channels_last)
    return float((predicted == split.labels).cpu().numpy().mean())  # as `correct(...).mean()` gives it
