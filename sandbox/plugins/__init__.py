"""Built-in plugins: the branch types, stems and downsamples every spec can use."""
