"""The Qt desktop application (PySide6). Imports torch lazily."""
