"""The architectures of sections 3.2-3.5 in torch, one per file, their registry
(``registry.create_model``) and the checkpoint formats that rebuild them."""
