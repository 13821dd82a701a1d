"""Commands for developers that no deployed service imports: the benches of the pipeline, the Kafka
data plane, section 3.2 and the simulator (``classroom bench``, services/cli/bench.py)."""
