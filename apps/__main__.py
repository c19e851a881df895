"""Command line: `python -m apps list` and `python -m apps <app> <verb> [--config FILE] [--key value ...]`."""
import contextlib
import os
import re
import sys
import tempfile
import warnings

VERBS = ("train", "evaluate", "predict", "export")
USAGE = "usage: python -m apps list | python -m apps <app> {train,evaluate,predict,export} [--help] [--key value ...]"

# TensorFlow's start-up lines that tell a user nothing: its libraries log through absl before they read
# TF_CPP_MIN_LOG_LEVEL, so that variable alone does not hide them (see _start_tensorflow).
_ABSL_LINE = re.compile(r"^([IWEF])\d{4} ")  # absl's prefix: severity, month, day
_SEVERITY = {"I": 0, "W": 1, "E": 2, "F": 3}
_ABSL_NOTE = "All log messages before absl::InitializeLog() is called are written to STDERR"
_CPU_NOTE = "To enable the following instructions:"  # second line of "This TensorFlow binary is optimized ..."
_NO_DRIVER = "Could not find cuda drivers on your machine"
_CUINIT = "failed call to cuInit"
_DEFAULT_LEVEL = "2"  # C++ errors stay visible; INFO and WARNING (oneDNN banner, CPU instructions...) do not


def wants_debug(argv):
    """`--verbose debug` anywhere on the command line (read before TensorFlow is imported; the config
    still receives it as its value)."""
    return any(a == "--verbose=debug" or (a == "--verbose" and b == "debug") for a, b in zip(argv, [*argv[1:], None]))


def tf_log_level(argv, environ):
    """The C++ log level this command runs with, and whether the user chose it: a TF_CPP_MIN_LOG_LEVEL
    the user set always wins; `--verbose debug` shows everything; otherwise errors only."""
    if "TF_CPP_MIN_LOG_LEVEL" in environ:
        try:
            return int(environ["TF_CPP_MIN_LOG_LEVEL"]), True
        except ValueError:
            return 0, True  # TensorFlow ignores a value it cannot read; so do we
    return (0 if wants_debug(argv) else int(_DEFAULT_LEVEL)), False


def start_up_lines_kept(lines, level, user_level):
    """The lines TensorFlow wrote to stderr while loading that a user should see: those at or above
    `level`, as TensorFlow would have done had it read the level in time. By default (no level of the
    user's own, no --verbose debug) cuInit's error goes too when there is no CUDA driver at all: there
    is no GPU to report on. With a driver, its failure is worth seeing."""
    hide_cuinit = level > 0 and not user_level and any(_NO_DRIVER in line for line in lines)
    kept = []
    for line in lines:
        m = _ABSL_LINE.match(line)
        if m:
            if _SEVERITY[m.group(1)] < level or (hide_cuinit and _CUINIT in line):
                continue
        elif (_ABSL_NOTE in line or line.startswith(_CPU_NOTE)) and level > 0:
            continue
        kept.append(line)
    return kept


@contextlib.contextmanager
def _stderr_filtered(keep):
    """Send file descriptor 2 (where C++ logs go) to a temporary file, then write back `keep(lines)`.
    If the process dies inside (it should not: only imports run here), what it wrote is lost;
    `--verbose debug` runs without this."""
    sys.stderr.flush()
    try:
        saved = os.dup(2)
    except OSError:  # no stderr to filter
        yield
        return
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            lines = tmp.read().decode("utf-8", errors="replace").splitlines(keepends=True)
            sys.stderr.write("".join(keep(lines)))
            sys.stderr.flush()


def _start_tensorflow(argv, find_devices):
    """Import TensorFlow (and find its devices, for a command that runs) without its start-up chatter:
    the absl note, the oneDNN banner, "Could not find cuda drivers", the CPU-instructions notice and,
    without a GPU driver, cuInit's error. TF_CPP_MIN_LOG_LEVEL (set here unless the user did) governs
    what TensorFlow logs later. `--verbose debug`, or a TF_CPP_MIN_LOG_LEVEL of the user's own, brings
    the lines back."""
    if "tensorflow" in sys.modules:  # already loaded (e.g. main() called from a test): nothing to hide
        return
    level, user_level = tf_log_level(argv, os.environ)
    if not user_level:
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = str(level)
    quiet = _stderr_filtered(lambda lines: start_up_lines_kept(lines, level, user_level)) if level > 0 else contextlib.nullcontext()
    with quiet:
        import tensorflow as tf

        if find_devices:
            tf.config.list_physical_devices()  # where the GPU platform starts (cuInit); logical devices stay unset
    if level >= 2:  # TensorFlow's Python warnings too (retracing notes when predict stylises photo after photo)
        tf.get_logger().setLevel("ERROR")


def one_line_warning(message, category, filename, lineno, line=None, _default=warnings.formatwarning):
    """The suite's own warnings (UserWarning: skipped files, a model that collapsed) as one `warning:` line,
    without the file, line number and source line Python adds; other categories as Python shows them."""
    if category is UserWarning:
        return f"warning: {message}\n"
    return _default(message, category, filename, lineno, line)


def build_parser(app_cls, verb):
    from apps.core.config import OneLineParser, add_config_flags

    prog = f"python -m apps {app_cls.name} {verb}"
    usage = f"{prog} [--config FILE] [--key value ...]" + (f" {app_cls.predict_inputs} ..." if verb == "predict" else "")
    parser = OneLineParser(prog=prog, usage=usage, description=_summary(app_cls))
    parser.add_argument("--config", metavar="FILE", help="JSON or TOML file of options (flags override it)")
    add_config_flags(parser, app_cls.Config)
    if verb == "predict":
        parser.add_argument("inputs", nargs="*", help=app_cls.predict_inputs_help)
    if verb == "export":
        parser.add_argument("--export_dir", help="base folder of versions (default saved_models/<app>)")
    return parser


def _summary(app_cls):
    """The first line of the app's docstring."""
    return (app_cls.__doc__ or app_cls.name).strip().splitlines()[0]


def list_text():
    """`python -m apps list`: each app, what it does and the data it trains on by default."""
    from apps.core.registry import get_app, list_apps

    names = list_apps()
    width = max(map(len, names)) + 2
    lines = []
    for name in names:
        app_cls = get_app(name)
        lines.append(f"{name:<{width}}{_summary(app_cls).rstrip('.')} (default data: {app_cls.default_data})")
    return "\n".join(lines)


def resolve_config(app_cls, verb, args):
    """Defaults, then (for evaluate/predict/export) the run's saved config, then --config, then flags."""
    from apps.core.config import apply_overrides, config_from_args, read_config_file

    cfg = config_from_args(app_cls.Config, args)
    saved = app_cls.default_run_dir(cfg) / "config.json"
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
    except OSError as e:  # a backstop: the runner names its own paths (full disk, read-only folder)
        print(f"error: {e}", file=sys.stderr)
        return 1


def _main(argv):
    from apps.core.errors import UserError
    from apps.core.registry import get_app

    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE)
        return 0
    runs = len(argv) > 1 and not argv[1].startswith("-") and not {"-h", "--help"} & set(argv[2:])
    _start_tensorflow(argv, find_devices=runs)  # every app imports TensorFlow: load it first, quietly
    if argv[0] == "list":
        print(list_text())
        return 0
    app_cls = get_app(argv[0])
    verbs = VERBS + tuple(app_cls.extra_verbs)
    if len(argv) < 2 or argv[1] in ("-h", "--help"):
        print(f"usage: python -m apps {argv[0]} {{{','.join(verbs)}}} [--help] [--key value ...]")
        for verb, what in app_cls.extra_verbs.items():
            print(f"  {verb}: {what}")
        return 0
    verb = argv[1]
    if verb not in verbs:
        raise UserError(f"unknown verb {verb!r}; choose one of {', '.join(verbs)}")
    args = build_parser(app_cls, verb).parse_command(argv[2:])
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
    elif verb == "export":
        runner.export(app, args.export_dir)
    else:
        runner.run_extra_verb(app, verb)
    return 0


if __name__ == "__main__":
    warnings.formatwarning = one_line_warning
    sys.exit(main())
