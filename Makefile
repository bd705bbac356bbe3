# The README's two commands. Both set everything up first (packaging/bootstrap.sh is idempotent).
.PHONY: run test lint bench

run:
	bash packaging/bootstrap.sh
	mkdir -p out
	.venv/bin/liif-viewer render resources/sample.png -o out/sample_x4.png --scale 4
	.venv/bin/liif-viewer export resources/sample.png -o out/sample_8x10in.jpg --print 8x10in --dpi 300

test:
	bash packaging/bootstrap.sh --dev
	.venv/bin/ruff check viewer tests
	.venv/bin/ruff format --check viewer tests
	.venv/bin/mypy
	QT_QPA_PLATFORM=offscreen .venv/bin/python -m pytest -q

bench:
	.venv/bin/liif-viewer bench
