"""A progress bar per epoch for training runs started from a terminal."""

from __future__ import annotations

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
