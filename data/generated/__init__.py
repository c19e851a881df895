"""Generated data sets built from the embedded files (offline defaults)."""
