"""User-facing error types shared by every layer.

Each carries a one-line message meant for a person: the command line prints it and exits with status 2,
the GUI shows it in a dialog. Nothing here imports torch or Qt.
"""


class ViewerError(Exception):
    """Base for problems caused by input, settings or environment, not by a bug."""


class ImageLoadError(ViewerError):
    """The photo cannot be read: missing, empty, not an image, truncated, or too large."""


class CheckpointError(ViewerError):
    """A weights file is malformed, unsafe, or does not match the architecture."""


class WeightsMissingError(ViewerError):
    """A registered model's weights are not on this machine yet."""


class DeviceError(ViewerError):
    """The requested compute device is not available."""


class LimitError(ViewerError):
    """A requested output exceeds a configured size limit."""


class ArgumentError(ViewerError):
    """A parameter (scale, print size, region, ...) is invalid."""


class Cancelled(Exception):
    """Raised inside a render when its cancellation token has been set."""
