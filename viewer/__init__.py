"""LIIF Viewer: continuous neural zoom for old photos, with print-size export."""

__version__ = "0.1.0"
