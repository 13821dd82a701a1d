"""Every ``classroom`` command of the models: each module has ``add_arguments(parser)`` and
``run(args) -> int`` (services/cli/main.py's command table names them) and calls the library
below it; none holds a computation of its own."""
