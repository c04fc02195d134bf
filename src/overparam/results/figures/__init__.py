"""One module per paper, one function per figure: `fig(sweep_dir) -> matplotlib Figure`."""
