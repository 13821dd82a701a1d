"""Section 3.2: multimodal enhancement and alignment (library, service, bench).

The library modules are pure functions named for what they compute: ``retinex`` (eqs. 1-2),
``guided_filter``, ``depth``, ``thermal``, ``alignment``, tied together by ``pipeline.Enhancer``;
``metrics`` and ``baselines`` serve the comparisons, ``bench`` is ``classroom bench enhance``.
"""
