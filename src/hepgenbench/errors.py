"""The one exception type that users see.

Every check on user input (config, files, trees, branches, keys) raises
:class:`InputError` with a message that names the offending item and says what was
expected, so that the CLI can print it without a traceback from deep inside numpy.
"""


class InputError(ValueError):
    """Bad user input: a config key, file, tree, branch or HDF5 key that is not as expected."""
