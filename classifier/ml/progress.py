"""Training progress: a bar per epoch for terminals, and reports for the model registry."""

from __future__ import annotations

import time
from collections.abc import Callable

import keras
from tqdm import tqdm


class EpochProgressBar(keras.callbacks.Callback):
    def __init__(self, stream):
        super().__init__()
        self.stream = stream
        self.bar = None

    def on_epoch_begin(self, epoch, logs=None):
        total = self.params.get("epochs", "?")
        self.bar = tqdm(
            total=self.params.get("steps"),
            desc=f"epoch {epoch + 1}/{total}",
            unit="batch",
            file=self.stream,
            leave=True,
            dynamic_ncols=True,
        )

    def on_train_batch_end(self, batch, logs=None):
        self.bar.update(1)
        if logs and "loss" in logs:
            self.bar.set_postfix(loss=f"{float(logs['loss']):.4f}", refresh=False)

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        shown = {k: f"{float(v):.4f}" for k, v in logs.items() if k != "learning_rate"}
        self.bar.set_postfix(shown, refresh=False)
        self.bar.close()


class ProgressReport(keras.callbacks.Callback):
    """Hands ``report`` a dict (stage, epoch, epochs, step, steps, loss, fraction) when an
    epoch begins and ends, and at most every ``every`` seconds in between.

    ``stages`` names successive ``fit`` calls that share this callback (training, then a
    refit). ``report`` may raise to stop training (the run was cancelled).
    """

    def __init__(self, report: Callable[[dict], None], stages=("training",), every=2.0):
        super().__init__()
        self.report, self.stages, self.every = report, tuple(stages), every
        self.fits, self.last = 0, 0.0
        self.epoch, self.logs = 0, {}

    def on_train_begin(self, logs=None):
        self.fits += 1

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch, self.logs = epoch, {}
        self._send(0)

    def on_train_batch_end(self, batch, logs=None):
        if time.monotonic() - self.last >= self.every:
            self.logs = logs or {}
            self._send(batch + 1)

    def on_epoch_end(self, epoch, logs=None):
        self.logs = logs or {}
        self._send(self.params.get("steps") or 0, done=True)

    def _send(self, step: int, done: bool = False) -> None:
        self.last = time.monotonic()
        epochs = self.params.get("epochs") or 1
        steps = self.params.get("steps") or 0
        within = 1.0 if done else (step / steps if steps else 0.0)
        stage = self.stages[min(self.fits, len(self.stages)) - 1] if self.fits else self.stages[0]
        progress = {
            "stage": stage,
            "epoch": self.epoch + 1,
            "epochs": epochs,
            "step": step,
            "steps": steps,
            "fraction": round((self.epoch + within) / epochs, 4),
        }
        for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
            if key in self.logs:
                progress[key] = round(float(self.logs[key]), 4)
        self.report(progress)
