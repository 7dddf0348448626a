"""The ``segsync`` command line: a thin typer layer over the engine's library API.

One module per command group (:mod:`.setup`: init, check, plugins; :mod:`.pull`; :mod:`.run`:
run and plan; :mod:`.history`: status and log; :mod:`.segments`: segments and model;
:mod:`.forget`; :mod:`.report`), sharing :mod:`.options` and :mod:`.output`. Nothing
outside this package imports from it.

A fresh :class:`typer.Typer` is built per invocation by :func:`build_app`, after the plugins
named by the config are loaded, so plugin commands (``register_commands``) and connectors are
those of this invocation. :func:`main` is the one place errors turn into exit codes: a
:class:`~segsync.core.errors.SegsyncError` prints one line per problem on stderr and exits
with its code (DESIGN §6); ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
from pathlib import Path

import typer

from segsync.plugins import Plugins, load_plugins

from .. import __version__
from ..alerts import redact, secret_values
from ..errors import ConfigError, Interrupted, PluginError, SegsyncError
from ..settings import DEFAULT_CONFIG, load_settings
from . import forget, history, pull, report, run, segments, setup
from .options import AppState, ConfigOption
from .output import err, error, out


def build_app(plugins: Plugins) -> typer.Typer:
    """Build the command tree, including commands contributed by plugins."""
    app = typer.Typer(
        name="segsync",
        help="Turn your customers and orders into live marketing segments.",
        no_args_is_help=True,
        pretty_exceptions_enable=False,
        add_completion=False,
        rich_markup_mode=None,
    )

    @app.callback(invoke_without_command=True)
    def root(
        ctx: typer.Context,
        config: Path | None = ConfigOption,
        debug: bool = typer.Option(False, "--debug", help="Show tracebacks for errors."),
        version: bool = typer.Option(
            False, "--version", help="Print the version and exit.", is_eager=True
        ),
    ) -> None:
        if version:
            out.print(f"segsync {__version__}")
            raise typer.Exit()
        if ctx.invoked_subcommand is None:
            out.print(ctx.get_help())
            raise typer.Exit()
        state = ctx.obj if isinstance(ctx.obj, AppState) else AppState(plugins, config)
        state.config = config if config is not None else state.config
        ctx.obj = state

    for group in (setup, pull, run, history, forget, segments, report):
        group.register(app)
    plugins.pm.hook.register_commands(app=app)
    return app


def _preparse(argv: list[str]) -> tuple[Path | None, bool, list[str]]:
    """Take --config and --debug out of the arguments, wherever they stand.

    Plugins must load before typer parses (they add commands), and users write both
    ``segsync --config x.toml pull`` and ``segsync pull --config x.toml``.
    """
    config, debug, rest = None, False, []
    args = iter(argv)
    for arg in args:
        if arg == "--":
            rest.append(arg)
            rest.extend(args)
        elif arg == "--debug":
            debug = True
        elif arg in ("--config", "-c"):
            value = next(args, None)
            if value is None:
                rest.append(arg)  # let typer report the missing value
            else:
                config = Path(value)
        elif arg.startswith("--config="):
            config = Path(arg.split("=", 1)[1])
        else:
            rest.append(arg)
    return config, debug, rest


def _plugin_dirs(config: Path | None) -> list[Path]:
    # Plugins must load before the full config can be validated (connector tables are checked
    # by plugin models); a config too broken to name its plugin folders fails later, properly.
    try:
        if config is None and not DEFAULT_CONFIG.exists():
            return []
        return load_settings(config).plugin_dirs
    except ConfigError:
        return []


def report_error(exc: SegsyncError, state: AppState | None = None) -> None:
    """One line per problem on stderr, with every credential the settings hold as ``***``:
    cron mails stderr, and a service's error can quote a request that carried a key."""
    # Only settings already loaded: loading them here could raise the error being reported.
    settings = state.__dict__.get("settings") if state is not None else None
    secrets = secret_values(settings) if settings is not None else set()
    for line in exc.problems if isinstance(exc, ConfigError) else [str(exc)]:
        error(redact(line, secrets))


class _StderrHandler(logging.StreamHandler):
    """segsync's warnings (a skipped model fit, a retried request) as one line on stderr."""

    def format(self, record: logging.LogRecord) -> str:
        return f"{record.levelname.lower()}: {record.getMessage()}"

    @property
    def stream(self):  # the current sys.stderr, so redirected or captured stderr works
        return sys.stderr

    @stream.setter
    def stream(self, _value) -> None:
        pass


def _log_to_stderr(debug: bool) -> None:
    logger = logging.getLogger("segsync")
    for handler in [h for h in logger.handlers if isinstance(h, _StderrHandler)]:
        logger.removeHandler(handler)
    handler = _StderrHandler()
    handler.setLevel(logging.DEBUG if debug else logging.WARNING)
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG if debug else logging.INFO)


_SIGNALS = {signal.SIGTERM: "stopped by SIGTERM", signal.SIGINT: "interrupted (Ctrl-C)"}


def _interrupt(signum: int, frame: object) -> None:
    raise Interrupted(_SIGNALS[signum], by_person=signum == signal.SIGINT)


def main(argv: list[str] | None = None) -> None:
    """Console entry point: run the CLI and turn errors into exit codes.

    SIGTERM (what cron's timeouts, systemd and Kubernetes send before killing) and Ctrl-C raise
    :class:`~segsync.core.errors.Interrupted` in the main thread, which unwinds the command:
    its ``runs`` row is closed as ``interrupted``, the HTTP calls already in flight finish, and
    it exits 1 ("something failed; the next run retries it", DESIGN §6) rather than the
    shell's 143/130. The sync journal makes the next run converge either way.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    config, debug, argv = _preparse(argv)
    _log_to_stderr(debug)
    main_thread = threading.current_thread() is threading.main_thread()
    previous = {sig: signal.signal(sig, _interrupt) for sig in _SIGNALS} if main_thread else {}
    state = None
    try:
        plugins = load_plugins(_plugin_dirs(config))
        command = typer.main.get_command(build_app(plugins))
        state = AppState(plugins, config)
        code = command.main(argv, prog_name="segsync", standalone_mode=False, obj=state)
    except typer.Exit as exc:
        code = exc.exit_code
    except Interrupted as exc:
        error(str(exc))
        code = exc.exit_code
    except typer.Abort:
        err.print("aborted")
        code = 1
    except typer.TyperException as exc:  # usage errors: bad option, missing command (exit 2)
        exc.show(file=sys.stderr)
        code = exc.exit_code
    except (SegsyncError, PluginError) as exc:
        if debug:
            raise
        report_error(exc, state)
        code = exc.exit_code
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    sys.exit(code or 0)

