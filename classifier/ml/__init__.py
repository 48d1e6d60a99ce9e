"""The CNN itself: preprocessing, model, training, metrics and inference.

Nothing in this package imports Django, so it can be tested and benchmarked alone.
TensorFlow is imported only by ``model``, ``train`` and ``export``; ``preprocess``,
``metrics`` and ``predict`` stay light enough for web and worker processes.
"""
