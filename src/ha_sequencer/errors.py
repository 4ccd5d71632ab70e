"""The root of the project's error hierarchy and the CLI exit codes (DESIGN.md: CLI)."""

EXIT_OK = 0
EXIT_FAILURE_FOUND = 1  # a check failed, a threshold was crossed, a test found a problem
EXIT_USAGE = 2  # bad usage or unusable input, with a message that says what and where


class HASequencerError(Exception):
    """An error the CLI reports as one clear line and an exit code; never carries key material."""

    exit_code = EXIT_USAGE


class InputError(HASequencerError):
    """Unusable input (file, flag, field): exit 2."""

    exit_code = EXIT_USAGE
