"""The ``classroom`` command: the user's entry point to the suite."""
