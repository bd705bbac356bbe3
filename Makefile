# The README's commands. Each sets everything up first (packaging/bootstrap.sh is idempotent).
.PHONY: run demo test lint bench

# Open the viewer window on the bundled sample photo.
run:
	bash packaging/bootstrap.sh
	.venv/bin/liif-viewer

# Without a window: render the sample at x4 and export it for an 8x10 in print at 300 DPI, into out/.
demo:
	bash packaging/bootstrap.sh
	mkdir -p out
	.venv/bin/liif-viewer render resources/sample.png -o out/sample_x4.png --scale 4
	.venv/bin/liif-viewer export resources/sample.png -o out/sample_8x10in.jpg --print 8x10in --dpi 300

test:
	bash packaging/bootstrap.sh --dev
	.venv/bin/ruff check viewer tests
	.venv/bin/ruff format --check viewer tests
	.venv/bin/mypy
	QT_QPA_PLATFORM=offscreen .venv/bin/python -m pytest -q -rs

bench:
	.venv/bin/liif-viewer bench
