"""Command line: `python -m apps list` and `python -m apps <app> <verb> [--config FILE] [--key value ...]`."""
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TensorFlow's start-up chatter out of the output

VERBS = ("train", "evaluate", "predict", "export")
USAGE = "usage: python -m apps list | python -m apps <app> {train,evaluate,predict,export} [--help] [--key value ...]"


def build_parser(app_cls, verb):
    from apps.core.config import OneLineParser, add_config_flags

    prog = f"python -m apps {app_cls.name} {verb}"
    usage = f"{prog} [--config FILE] [--key value ...]" + (f" {app_cls.predict_inputs} ..." if verb == "predict" else "")
    parser = OneLineParser(prog=prog, usage=usage, description=(app_cls.__doc__ or app_cls.name).strip().splitlines()[0])
    parser.add_argument("--config", metavar="FILE", help="JSON or TOML file of options (flags override it)")
    add_config_flags(parser, app_cls.Config)
    if verb == "predict":
        parser.add_argument("inputs", nargs="*", help=app_cls.predict_inputs_help)
    if verb == "export":
        parser.add_argument("--export_dir", help="base folder of versions (default saved_models/<app>)")
    return parser


def resolve_config(app_cls, verb, args):
    """Defaults, then (for evaluate/predict/export) the run's saved config, then --config, then flags."""
    from pathlib import Path

    from apps.core.config import apply_overrides, config_from_args, read_config_file

    cfg = config_from_args(app_cls.Config, args)
    saved = Path(cfg.run_dir or Path("runs") / app_cls.name) / "config.json"
    if verb != "train" and saved.is_file():
        base = apply_overrides(app_cls.Config(), read_config_file(saved), source=str(saved))
        if args.config:
            apply_overrides(base, read_config_file(args.config), source=args.config)
        cfg = apply_overrides(base, {k[4:]: v for k, v in vars(args).items() if k.startswith("cfg:")})
    return cfg


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    from apps.core.errors import TrainingDiverged, UserError
    from data.errors import DataError

    try:
        return _main(argv)
    except TrainingDiverged as e:
        print(f"error: {e}", file=sys.stderr)
        return 3
    except (UserError, DataError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; the last checkpoint is kept", file=sys.stderr)
        return 130


def _main(argv):
    from apps.core.errors import UserError
    from apps.core.registry import get_app, list_apps

    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE)
        return 0
    if argv[0] == "list":
        print("\n".join(list_apps()))
        return 0
    app_cls = get_app(argv[0])
    if len(argv) < 2 or argv[1] in ("-h", "--help"):
        print(f"usage: python -m apps {argv[0]} {{{','.join(VERBS)}}} [--help] [--key value ...]")
        return 0
    verb = argv[1]
    if verb not in VERBS:
        raise UserError(f"unknown verb {verb!r}; choose one of {', '.join(VERBS)}")
    args = build_parser(app_cls, verb).parse_args(argv[2:])
    cfg = resolve_config(app_cls, verb, args)

    from apps.core import runner
    from apps.core.strategy import split_cpu

    split_cpu(cfg.cpu_devices)
    app = app_cls(cfg)
    if verb == "train":
        runner.train(app)
    elif verb == "evaluate":
        runner.evaluate(app)
    elif verb == "predict":
        runner.predict(app, args.inputs)
    else:
        runner.export(app, args.export_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
