"""Training the project's own LIIF models (`liif-viewer train`, `python -m viewer.train`). No Qt here."""
