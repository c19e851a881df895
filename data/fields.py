"""`field(default, help, choices)` for the data configs (data/ never imports apps/, whose CLI reads this metadata)."""
import dataclasses


def field(default, help, choices=None):
    return dataclasses.field(default=default, metadata={"help": help, "choices": choices})
