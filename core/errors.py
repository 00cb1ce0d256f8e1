"""One error type for bad user input: the CLI prints it as one line and exits with code 2."""


class UserError(Exception):
    """Bad input (config, data file, model path, budget...). The message names the culprit,
    e.g. ``configs/x.yaml: data.budget: 5000 exceeds the 1200 training pairs available``."""

    exit_code = 2
