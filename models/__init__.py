"""The paper's networks (sections 3.3-3.5) in torch, their registry, training and evaluation."""
