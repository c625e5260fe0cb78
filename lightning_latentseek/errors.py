"""User errors: what a person fixes in their command, config or data (not bugs).

The command line prints them as one line ``error: <message>`` and exits with status 2;
`--debug` (or ``LATENTSEEK_DEBUG=1``) shows the traceback instead.
"""


class UserError(Exception):
    """Bad input: a data file, field or row, an option value, a model that cannot be loaded,
    an output directory holding another configuration's results."""
