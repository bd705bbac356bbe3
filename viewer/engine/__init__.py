"""The engine: everything between a photo and rendered pixels, with no Qt."""
