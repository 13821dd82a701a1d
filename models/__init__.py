"""The paper's networks (sections 3.2-3.5) in torch, by kind, each subpackage importing only those
listed before it: ``data`` (crops, windows, data sets), ``networks`` (architectures, registry,
checkpoint formats), ``serving`` (the inference engine, export), ``training`` (losses, training
loops), ``evaluation`` (tables, replay, benchmark), ``tools`` (the ``classroom`` commands).
``checkpoints/`` holds the committed weights. pyproject.toml's import-linter contracts check it."""
