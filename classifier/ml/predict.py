"""Inference with the LiteRT form of a model: no TensorFlow import, no ``model.predict``.

One ``Predictor`` per process holds one interpreter; a batch is resized into the input
tensor and run in one call. The interpreter runs either a whole model (pixels to
probabilities: the shipped versions) or the shared int8 backbone (pixels to features),
followed by the version's heads in NumPy (``heads.Heads``: versions retrained here).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np


@dataclass
class Answers:
    """What a model says about a batch of photos."""

    probabilities: np.ndarray  # (n, classes)
    # The backbone's features (n, F), for the versions served as backbone then heads.
    features: np.ndarray | None = None
    # Per photo, True when it shows none of the classes; None when the version cannot tell
    # (the whole models shipped before the detector, versions trained without it).
    none_of_these: np.ndarray | None = None


class Predictor:
    def __init__(
        self,
        model_content: bytes,
        classes: list[str],
        input_size: int,
        num_threads: int = 1,
        heads=None,
    ):
        from ai_edge_litert.interpreter import Interpreter

        self.classes = list(classes)
        self.input_size = input_size
        self.heads = heads
        self._interpreter = Interpreter(model_content=model_content, num_threads=num_threads)
        self._input = self._interpreter.get_input_details()[0]["index"]
        self._output = self._interpreter.get_output_details()[0]["index"]
        self._batch_size = 0
        # An interpreter is not thread-safe; threaded servers share one per process.
        self._lock = threading.Lock()

    def probabilities(self, pixels: np.ndarray) -> np.ndarray:
        """``(n, size, size, 3)`` uint8 pixels to ``(n, n_classes)`` probabilities."""
        return self.answers(pixels).probabilities

    def answers(self, pixels: np.ndarray) -> Answers:
        """``(n, size, size, 3)`` uint8 pixels to the model's ``Answers``."""
        if len(pixels) == 0:
            return Answers(np.zeros((0, len(self.classes)), dtype=np.float32))
        with self._lock:
            if len(pixels) != self._batch_size:
                self._interpreter.resize_tensor_input(self._input, pixels.shape, strict=False)
                self._interpreter.allocate_tensors()
                self._batch_size = len(pixels)
            # Converted to float straight into the interpreter's input, with no float copy of
            # the batch first (a third of the cost of handing over 32 photos). The view is
            # dropped before invoke, as LiteRT requires.
            self._interpreter.tensor(self._input)()[...] = pixels
            self._interpreter.invoke()
            output = self._interpreter.get_tensor(self._output).copy()
        if self.heads is None:
            return Answers(output)
        probabilities = self.heads.probabilities(output)
        return Answers(
            probabilities,
            features=output,
            none_of_these=self.heads.none_of_these_flags(output, probabilities),
        )
