"""The one exception a command raises for bad input: printed as a single line, exit status 2."""


class UsageError(Exception):
    """Bad input from the user (a wrong key, a missing file, a malformed value).

    The message names what was wrong and, where it helps, what to do instead;
    ``beamhub`` prints it on one line and exits with status 2, never a traceback.
    """
