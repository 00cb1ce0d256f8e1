"""One error type for bad user input: the CLI prints it as one line and exits with code 2."""


class UserError(Exception):
    """Bad input (config, data file, model path, budget...). The message names the culprit,
    e.g. ``configs/x.yaml: data.budget: 5000 exceeds the 1200 training pairs available``."""

    exit_code = 2


class DataMissing(UserError):
    """The data a source needs is absent (no data directory, no such language folder or file). Distinct from
    malformed data, so that a list of alternative sources can fall back to the next one."""


class PluginMissing(UserError):
    """A `plugins:` module that does not import (absent, or failing): the report, which needs no plugin,
    goes on without it."""


class StageFailed(Exception):
    """A stage's own process failed (a training job's exit code): its log is above; the CLI says which in one
    line and exits with code 1. Finished work is kept: the same command continues from it."""

    exit_code = 1
