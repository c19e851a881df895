"""Task apps of the suite: `python -m apps <app> <verb>`; see README.md."""
