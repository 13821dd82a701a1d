"""Section 3.2: multimodal enhancement and alignment (library and service).

The library modules are pure functions named for what they compute: ``retinex`` (eqs. 1-2),
``guided_filter``, ``depth``, ``thermal``, ``alignment``, tied together by ``pipeline.Enhancer``;
``metrics`` and ``baselines`` serve the comparisons (``classroom bench enhance`` is
services/tools/bench_enhance.py). ``service``, ``__main__`` and ``config`` are the Kafka service,
a runner: pyproject.toml's layers keep the library from importing them.
"""
