"""The `rca` command: parses options, calls the library, picks a renderer. No analysis logic lives here.

Exit codes: 0 ran (no gate tripped), 1 a `compare` gate tripped, 2 bad usage or no readable input,
130 interrupted. Data goes to stdout; progress, warnings and errors go to stderr.
"""

from __future__ import annotations

import dataclasses
import functools
import gc
import glob
import os
import shlex
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from typer.core import TyperCommand

from rca import __version__
from rca.errors import ExitCode, InputError, UsageError


def _coerce_plain_values_directly() -> None:
    """Typer (0.2x) coerces every parameter's value, given or default, through a pydantic TypeAdapter built
    on first use: importing pydantic and building them costs 60-100 ms a run, more than reading 50,000
    lines. A value that already has its parameter's exact type (a `str` from the command line, a default
    enum member, a flag's `bool`, a tuple of `str` for a `list[str]`) is what the adapter would return: it
    is taken as it is, and the adapter is built only for the others (an `int`, a `Path`, a choice given as
    text), with the same result and error messages. Without those typer internals (another typer): nothing
    to do."""
    try:
        from typer import core
        from typer._coercion import RuntimeParam

        build: Callable[[Any], Any] = core.build_runtime_param
    except (ImportError, AttributeError):
        return
    if getattr(build, "plain_values_first", False):
        return

    try:  # typer's internals may change shape in a release: then typer's own conversion, unchanged

        @dataclasses.dataclass(frozen=True)
        class PlainValuesFirst(RuntimeParam):
            descriptor: Any = None
            built: list[Any] = dataclasses.field(default_factory=list)  # typer's own, once a value needs it

            def _coerce_value(self, value: Any, param: Any, ctx: Any) -> Any:
                annotation = getattr(self, "annotation", None)
                if isinstance(annotation, type) and type(value) is annotation:
                    return value
                if annotation == list[str] and isinstance(value, (list, tuple)) and all(type(v) is str for v in value):
                    return list(value)
                if not self.built:
                    self.built.append(build(self.descriptor))
                return self.built[0]._coerce_value(value, param, ctx)
    except Exception:
        return

    def build_plain_first(descriptor: Any) -> Any:
        try:
            if descriptor.file_annotation is None and descriptor.parameter_info.parser is None:
                return PlainValuesFirst(descriptor.parameter_info, descriptor.annotation, descriptor)
        except Exception:  # another typer's descriptor: its own conversion below
            pass
        return build(descriptor)

    build_plain_first.plain_values_first = True  # type: ignore[attr-defined]
    core.build_runtime_param = build_plain_first


_coerce_plain_values_directly()

if TYPE_CHECKING:
    from rich.console import Console

    from rca.compare import Comparison
    from rca.model import Report

# Help is click's plain layout (rich_markup_mode=None): rich markup ate the "[gates]" of the config hint,
# showed "<bool>" after every flag, and CI variables force its colors. "\b" keeps a paragraph as written.
app = typer.Typer(
    name="rca",
    help="Read the logs and traces of an incident and tell what most likely caused it.\n\n"
    "Exit codes: 0 ok, 1 a compare gate failed, 2 bad usage or nothing readable, 130 interrupted.",
    epilog="\b\nExamples:\n"
    "  rca simulate third-party-surge --seed 7 --out incident\n"
    "  rca analyze incident/telemetry\n"
    "  rca analyze access.log app.log.gz -f markdown -o postmortem.md --chart chart.png\n"
    "  rca compare --baseline main/ --candidate pr/ --fail-on 'p95>+20%'",
    no_args_is_help=True,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


class OutputFormat(StrEnum):
    terminal = "terminal"
    json = "json"
    markdown = "markdown"


class ColorMode(StrEnum):
    auto = "auto"
    always = "always"
    never = "never"


def _error_boundary(fn: Callable) -> Callable:
    """The one error boundary, around every command: each exception type maps to an exit code and at most
    one line on stderr, inside the app itself (so `main()`, the test runner and anyone embedding the app
    see the same behaviour). Typer's own exceptions pass through: `typer.Exit` carries its code, usage
    errors raised while parsing are shown by typer with exit code 2.

    - `InputError` (unreadable input) and `UsageError` (bad option values): `rca: error: ...`, exit 2;
    - `BrokenPipeError` (the reader of stdout went away, `rca ... | head`): nothing more is written, exit 0;
    - `KeyboardInterrupt`: `rca: interrupted`, exit 130;
    - anything else: one line naming the exception, exit 2 (never 1, which means "a gate failed"), or the
      traceback with `--debug`.
    """

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            result = fn(*args, **kwargs)
            sys.stdout.flush()  # a closed pipe shows here at the latest, not at interpreter exit
            return result
        except (typer.Exit, typer.Abort, typer.BadParameter):
            raise
        except KeyboardInterrupt:
            print("rca: interrupted", file=sys.stderr)
            raise typer.Exit(ExitCode.INTERRUPTED) from None
        except InputError as exc:
            _error_line(f"{exc}" + (f" ({exc.hint})" if exc.hint else ""))
            raise typer.Exit(ExitCode.USAGE) from None
        except UsageError as exc:
            _error_line(str(exc))
            raise typer.Exit(ExitCode.USAGE) from None
        except BrokenPipeError:
            _silence_stdout()
            raise typer.Exit(ExitCode.OK) from None
        except Exception as exc:
            if _debug:
                raise
            _error_line(f"unexpected {type(exc).__name__}: {exc} (run with --debug for a traceback)")
            raise typer.Exit(ExitCode.USAGE) from None

    return wrapper


def _imports_done() -> None:
    """Called by the commands that read data once they have imported what they use: the garbage
    collector, off while `main` started up, runs again, and the objects made so far (modules, classes)
    are left out of its walks for the rest of the run."""
    if not gc.isenabled():  # not when the app runs inside another program (tests): its objects are its own
        gc.freeze()
        gc.enable()


def _error_line(message: str) -> None:
    print(f"rca: error: {message}", file=sys.stderr)


def _silence_stdout() -> None:
    """Point stdout at /dev/null, so the flush at exit does not raise again on the closed pipe."""
    try:
        fileno = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):  # not a real file (a test runner's buffer): nothing to flush later
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, fileno)
    os.close(devnull)


_debug = False  # set by the root option --debug


def _version(value: bool) -> None:
    if value:
        typer.echo(f"rca {__version__}")
        raise typer.Exit(ExitCode.OK)


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Show the traceback of an unexpected error (also accepted after the command).")] = False,
) -> None:
    """Read the logs and traces of an incident and tell what most likely caused it."""
    global _debug
    _debug = debug


# --- shared option types --------------------------------------------------------------------------

Inputs = Annotated[
    list[str],
    typer.Argument(
        metavar="INPUTS",
        help="Files, directories (recursive), globs ('**' allowed) or '-' for stdin. "
        "gzip, zstd and bz2 are detected from their bytes.",
        show_default=False,
    ),
]
InputFormatOpt = Annotated[
    str | None,
    typer.Option("--input-format", metavar="FORMAT", help="Force a format for every input (see `rca formats`).", rich_help_panel="Input"),
]
LogFormatOpt = Annotated[
    str | None,
    typer.Option("--log-format", metavar="LOG_FORMAT", help="A custom nginx log_format string, e.g. '$remote_addr [$time_local] \"$request\" $status $request_time'.", rich_help_panel="Input"),
]
FieldOpt = Annotated[
    list[str] | None,
    typer.Option("--field", metavar="NAME=PATH", help="Map a canonical field to a JSON/logfmt key: name=path (repeatable), e.g. endpoint=req.route.", rich_help_panel="Input"),
]
ChangesOpt = Annotated[
    list[str] | None,
    typer.Option("--changes", metavar="FILE", help="Deploy/config markers from outside: JSON lines or CSV of ts,kind,service,subject (repeatable).", rich_help_panel="Input"),
]
TzOpt = Annotated[
    str, typer.Option("--tz", metavar="ZONE", help="Zone of timestamps that carry none (IANA name or +HH:MM).", rich_help_panel="Input")
]
YearOpt = Annotated[
    int | None, typer.Option("--year", metavar="YEAR", help="Year for timestamps without one (syslog RFC 3164).", rich_help_panel="Input")
]
SignalOpt = Annotated[
    str | None,
    typer.Option("--signal", metavar="SIGNAL", help="traces, logs or metrics: what an ambiguous binary OTLP file holds.", rich_help_panel="Input"),
]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress or warnings on stderr.")]


def _parse_options(
    input_format: str | None, log_format: str | None, fields: list[str] | None, tz: str, year: int | None, signal: str | None
):
    from rca.parsers import ParseOptions

    mapping: dict[str, str] = {}
    for item in fields or []:
        name, sep, path = item.partition("=")
        if not sep or not name.strip() or not path.strip():
            raise UsageError(f"--field expects name=path, got {item!r}")
        mapping[name.strip()] = path.strip()
    return ParseOptions(
        input_format=input_format, log_format=log_format, fields=mapping, year=year, tz=tz, signal=signal
    )


class _Silent:
    """stderr with --quiet: nothing is printed (a quiet rich Console would cost its import, ~30 ms)."""

    is_terminal = False

    def print(self, *objects: Any, **options: Any) -> None:
        pass


def _stderr_console(quiet: bool):
    if quiet:
        return _Silent()
    from rich.console import Console

    return Console(stderr=True, highlight=False, soft_wrap=True)  # one warning, one line (grep)


def _progress(console, quiet: bool):
    """A progress callback drawing on stderr, or None when stderr is not an interactive terminal."""
    if quiet or not console.is_terminal or os.environ.get("CI"):
        return None, None
    import time

    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    progress = Progress(
        TextColumn("{task.description}"), BarColumn(), TextColumn("{task.fields[detail]}"), TimeElapsedColumn(),
        console=console, transient=True,
    )
    task = progress.add_task("reading", total=None, detail="")
    current = [""]
    started = [time.monotonic()]

    def update(stage: str, done: int, total: int) -> None:
        if stage != current[0]:
            current[0], started[0] = stage, time.monotonic()
        elapsed = time.monotonic() - started[0]
        detail = f"{done / 1e6:,.0f}/{total / 1e6:,.0f} MB" + (f"  {done / 1e6 / elapsed:,.0f} MB/s" if done and elapsed > 0.2 else "") if total else ""
        progress.update(task, description=stage, completed=done, total=total or None, detail=detail)

    return progress, update


CHART_SUFFIXES = (".svg", ".png", ".pdf")


def _check_writable(path: Path | None, what: str) -> None:
    """Before any work: the folder of an output must exist and take files, so hours of analysis are
    never lost to a typo in -o or --chart."""
    if path is None:
        return
    folder = path.parent
    if path.is_dir():
        raise UsageError(f"{path}: cannot write {what}: it is a directory")
    if not folder.is_dir():
        raise UsageError(f"{path}: cannot write {what}: no directory {str(folder)!r}")
    if not os.access(folder, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise UsageError(f"{path}: cannot write {what}: permission denied")


def _check_not_an_input(path: Path | None, inputs: list[str], what: str) -> None:
    """Before any work: an output must not be one of the files read (named, or matched by a glob); the
    user's data is never written over (`rca analyze app.log -o app.log`)."""
    if path is None or not path.exists():
        return
    target = path.resolve()
    for item in inputs:
        named = [Path(m) for m in glob.glob(item, recursive=True)] if glob.has_magic(item) else [Path(item)]
        if any(p.exists() and p.resolve() == target for p in named):
            raise UsageError(f"{path}: cannot write {what} over one of the inputs")


def _check_chart(chart: Path | None) -> None:
    if chart is not None and chart.suffix.lower() not in CHART_SUFFIXES:
        raise UsageError(f"{chart}: --chart writes {', '.join(CHART_SUFFIXES)} (by the file's extension), not {chart.suffix or 'a file without one'!r}")
    _check_writable(chart, "the chart")


@contextmanager
def _reader_may_stop() -> Iterator[None]:
    """A reader that stops early (`rca ... | head`) closes the pipe: no failure. What is left of stdout
    goes to /dev/null and the command ends with its own verdict (click would exit 1, which for
    `compare` means a failed gate)."""
    try:
        yield
    except BrokenPipeError:
        _silence_stdout()


def _write_output(text: str | bytes, output: Path | None) -> None:
    if output is None:
        if isinstance(text, bytes):
            sys.stdout.buffer.write(text)
            sys.stdout.buffer.flush()
        else:
            sys.stdout.write(text)
            sys.stdout.flush()
        return
    if isinstance(text, bytes):
        output.write_bytes(text)
    else:
        output.write_text(text, encoding="utf-8")


def _terminal_console(output: Path | None, color: ColorMode):
    from rich.console import Console

    class QuietOnClosedPipe(Console):
        def on_broken_pipe(self) -> None:
            """rich exits 1 when the reader goes (`rca analyze | head`): stop writing instead."""
            self.quiet = True
            _silence_stdout()

    if output is not None:
        return QuietOnClosedPipe(file=open(output, "w", encoding="utf-8"), no_color=True, width=120, highlight=False)
    force = {ColorMode.always: True, ColorMode.never: False}.get(color)
    no_color = color is ColorMode.never or None
    console = QuietOnClosedPipe(force_terminal=force, no_color=no_color, highlight=False)
    if not console.is_terminal and "COLUMNS" not in os.environ:
        console = QuietOnClosedPipe(force_terminal=force, no_color=no_color, highlight=False, width=120)
    return console


def _warn_inputs(console, inputs) -> None:
    for summary in inputs:
        for warning in summary.warnings:
            console.print(f"rca: warning: {summary.path}: {warning}", markup=False)
        if summary.rejected:
            lines = ", ".join(str(r.line) for r in summary.rejected_examples[:3])
            first = summary.rejected_examples[0].reason if summary.rejected_examples else ""
            console.print(
                f"rca: warning: {summary.path}: {summary.rejected} line(s) rejected (first at line {lines}: {first})",
                markup=False,
            )


# --- commands -------------------------------------------------------------------------------------


ANALYZE_EXAMPLES = """\b
Examples:
  rca analyze incident/                      every file under the folder
  rca analyze access.log 'logs/**/*.gz' --since '2026-01-12 08:40' --until 09:30
  rca analyze traces.json -f json | jq .hypotheses[0]
  rca analyze incident/ -f markdown -o report/postmortem.md --chart report/chart.png
  kubectl logs deploy/api | rca analyze -"""


@app.command(epilog=ANALYZE_EXAMPLES)
@_error_boundary
def analyze(
    inputs: Inputs,
    output_format: Annotated[OutputFormat, typer.Option("--format", "-f", help="Report format.")] = OutputFormat.terminal,
    output: Annotated[Path | None, typer.Option("--output", "-o", metavar="FILE", help="Write the report to this file instead of stdout.")] = None,
    chart: Annotated[Path | None, typer.Option("--chart", metavar="FILE", help="Also write a chart of the top cause and symptom (.svg, .png or .pdf).")] = None,
    bucket: Annotated[str | None, typer.Option("--bucket", metavar="DURATION", help="Time bucket, e.g. 30s, 1m, 5m (default: from the data).", rich_help_panel="Windows")] = None,
    since: Annotated[str | None, typer.Option("--since", metavar="TIME", help="Incident start: RFC 3339, 'YYYY-MM-DD HH:MM[:SS]' (UTC unless --tz), or '30m' before the end of the data.", rich_help_panel="Windows")] = None,
    until: Annotated[str | None, typer.Option("--until", metavar="TIME", help="Incident end (same forms as --since).", rich_help_panel="Windows")] = None,
    baseline_since: Annotated[str | None, typer.Option("--baseline-since", metavar="TIME", help="Baseline start (same forms).", rich_help_panel="Windows")] = None,
    baseline_until: Annotated[str | None, typer.Option("--baseline-until", metavar="TIME", help="Baseline end (same forms).", rich_help_panel="Windows")] = None,
    input_format: InputFormatOpt = None,
    log_format: LogFormatOpt = None,
    field: FieldOpt = None,
    changes: ChangesOpt = None,
    tz: TzOpt = "UTC",
    year: YearOpt = None,
    signal: SignalOpt = None,
    color: Annotated[ColorMode, typer.Option("--color", help="Color in the terminal report.")] = ColorMode.auto,
    quiet: QuietOpt = False,
) -> None:
    """Rank the likely causes of the incident in INPUTS, with evidence and ruled-out paths."""
    from rca.model import ANALYZED_REQUEST_COLUMNS
    from rca.pipeline import (
        AnalyzeOptions,
        analyze_dataset,
        analyzed_event_rows,
        analyzed_request_rows,
        analyzed_spans,
        load,
    )

    _imports_done()

    err = _stderr_console(quiet)
    _check_writable(output, "the report")  # fail before reading anything
    _check_chart(chart)
    for path, what in ((output, "the report"), (chart, "the chart")):
        _check_not_an_input(path, list(inputs), what)
    if bucket is not None:
        from rca.detectors.windows import parse_duration_s

        parse_duration_s(bucket)
    options = AnalyzeOptions(
        parse=_parse_options(input_format, log_format, field, tz, year, signal),
        changes_files=list(changes or []),
        bucket=bucket,
        since=since,
        until=until,
        baseline_since=baseline_since,
        baseline_until=baseline_until,
        command="rca " + " ".join(shlex.quote(a) for a in sys.argv[1:]),
    )
    progress, update = _progress(err, quiet)  # stderr on a terminal only, whatever the report format
    if progress is not None:
        with progress:
            dataset = load(inputs, options, progress=update, request_columns=ANALYZED_REQUEST_COLUMNS, max_request_rows=analyzed_request_rows(),
                           max_event_rows=analyzed_event_rows(), max_spans=analyzed_spans())
            _warn_inputs(err, dataset.inputs)
            report = analyze_dataset(dataset, options, update)
    else:
        dataset = load(inputs, options, request_columns=ANALYZED_REQUEST_COLUMNS, max_request_rows=analyzed_request_rows(),
                       max_event_rows=analyzed_event_rows(), max_spans=analyzed_spans())
        _warn_inputs(err, dataset.inputs)
        report = analyze_dataset(dataset, options)
    _warn_coarse_buckets(err, report, bucket)

    # The report first, then the chart: whatever fails later, what could be written is.
    try:
        with _reader_may_stop():
            _write_report(report, output_format, output, chart, color)
    except OSError as exc:
        raise UsageError(f"{output or 'stdout'}: cannot write the report: {exc.strerror or exc}") from None
    if chart is not None:
        from rca.render.chart import write_chart

        try:
            write_chart(report, chart)
        except OSError as exc:
            raise UsageError(f"{chart}: cannot write the chart: {exc.strerror or exc} (the report was written)") from None


def _write_report(report: Report, output_format: OutputFormat, output: Path | None, chart: Path | None, color: ColorMode) -> None:
    if output_format is OutputFormat.json:
        from rca.render.json import render_json

        _write_output(render_json(report), output)
    elif output_format is OutputFormat.markdown:
        from rca.render.markdown import render_markdown

        # the image link is relative to the Markdown file's folder (or the working directory for stdout)
        link = None if chart is None else Path(os.path.relpath(chart.resolve(), (output.resolve().parent if output else Path.cwd())))
        _write_output(render_markdown(report, chart_path=link), output)
    else:
        from rca.render.terminal import render_terminal

        console = _terminal_console(output, color)
        try:
            render_terminal(report, console)
        finally:
            if output is not None:
                console.file.close()


def _warn_coarse_buckets(err: Console, report: Report, bucket: str | None) -> None:
    """Days or months of data get buckets of an hour or more, which blur an incident of minutes: say so."""
    ctx = report.context
    if ctx is None or bucket is not None or ctx.bucket_s < 3600:
        return
    days = ctx.span.duration.total_seconds() / 86400
    err.print(f"rca: warning: the data spans {days:,.0f} days, so buckets are {ctx.bucket_s // 3600} h and an incident of "
              "minutes is blurred; focus on it with --since/--until (or set --bucket)", markup=False)


@app.command(epilog="\b\nExamples:\n  rca ingest incident/ --out frames/\n  rca analyze frames/")
@_error_boundary
def ingest(
    inputs: Inputs,
    out: Annotated[str, typer.Option("--out", "-o", metavar="DIR|STORE", help="Directory to write the canonical frames to, as Parquet (an earlier ingest's frames there are replaced once all is written; a directory given as input skips it); or a ClickHouse store (chdb:PATH, clickhouse://...) to write spans, logs and metrics in the OpenTelemetry exporter's schema.")],
    input_format: InputFormatOpt = None,
    log_format: LogFormatOpt = None,
    field: FieldOpt = None,
    changes: ChangesOpt = None,
    tz: TzOpt = "UTC",
    year: YearOpt = None,
    signal: SignalOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """Parse INPUTS into the canonical frames and write them as Parquet (readable by `rca analyze`)."""
    from rca.parsers.loader import ingest_to_parquet, ingest_to_store
    from rca.parsers.sources import is_store_url

    _imports_done()

    err = _stderr_console(quiet)
    parse = _parse_options(input_format, log_format, field, tz, year, signal)
    if is_store_url(out):
        summaries, written = ingest_to_store(inputs, out, parse, changes_files=list(changes or []))
        _warn_inputs(err, summaries)
        tables = ", ".join(f"{n:,} to {t}" for t, n in written.items()) or "nothing"
        err.print(f"rca: wrote {tables} (spans, logs and metric points; requests from access logs have no place in the exporter's schema)", markup=False)
        return
    summaries = ingest_to_parquet(inputs, Path(out), parse, changes_files=list(changes or []))
    _warn_inputs(err, summaries)
    total = sum(s.total_rows for s in summaries)
    rejected = sum(s.rejected for s in summaries)
    err.print(f"rca: wrote {total:,} rows from {len(summaries)} input(s) to {out} ({rejected:,} rejected)", markup=False)


class _ScenariosHelp(TyperCommand):
    """`simulate --help` lists the scenarios (read when help is asked for: importing the simulator costs
    half a second that no other command should pay)."""

    def format_epilog(self, ctx: Any, formatter: Any) -> None:  # click's Context and HelpFormatter
        from rca.simulate import SCENARIOS, WILD_SCENARIOS

        formatter.write_paragraph()
        formatter.write_text("Scenarios:")
        with formatter.indentation():
            formatter.write_dl([(name, spec.description) for name, spec in SCENARIOS.items()]
                               + [(name, description) for name, (description, _) in WILD_SCENARIOS.items()])
        super().format_epilog(ctx, formatter)


def _list_scenarios(value: bool) -> None:
    if value:
        from rca.simulate import SCENARIOS, WILD_SCENARIOS

        for name, spec in SCENARIOS.items():
            typer.echo(f"{name:26} {spec.description}")
        for name, (description, _) in WILD_SCENARIOS.items():
            typer.echo(f"{name:26} {description}")
        raise typer.Exit(ExitCode.OK)


@app.command(cls=_ScenariosHelp, epilog="\b\nExamples:\n  rca simulate third-party-surge --seed 7 --out incident\n"
             "  rca analyze incident/telemetry\n"
             "  rca simulate quiet --seed 3 --out base && rca simulate quiet --seed 3 --noise-seed 4 --latency-regression 1.3 --out cand")
@_error_boundary
def simulate(
    scenario: Annotated[str, typer.Argument(metavar="SCENARIO", help="Which incident to simulate (listed below).", show_default=False)],
    out: Annotated[Path, typer.Option("--out", "-o", metavar="DIR", help="Directory to write the incident's files to.")],
    seed: Annotated[int, typer.Option("--seed", metavar="N", help="Random seed: the same seed writes the same bytes.")] = 0,
    minutes: Annotated[int | None, typer.Option("--minutes", metavar="N", help="Length of the simulated period in minutes.")] = None,
    scale: Annotated[float, typer.Option("--scale", metavar="FACTOR", help="Traffic multiplier (1.0 = the default volume).")] = 1.0,
    noise_seed: Annotated[int | None, typer.Option("--noise-seed", metavar="N", help="Keep the platform of --seed (routes, services, hosts, clients) and draw the noise from this seed: a baseline and an unchanged candidate for `rca compare`.")] = None,
    latency_regression: Annotated[float | None, typer.Option("--latency-regression", metavar="FACTOR", help="Multiply one endpoint's time by this factor through its database calls, as a bad release would (e.g. 1.3).")] = None,
    regression_endpoint: Annotated[str | None, typer.Option("--regression-endpoint", metavar="ROUTE", help="The endpoint --latency-regression slows (default: one drawn from --seed).")] = None,
    list_scenarios: Annotated[bool, typer.Option("--list", callback=_list_scenarios, is_eager=True, help="List the scenarios and exit.")] = False,
) -> None:
    """Write realistic telemetry of a small platform under an incident, with its truth.json."""
    from rca.simulate import SCENARIOS, WILD_SCENARIOS
    from rca.simulate import simulate as run_simulation

    if scenario not in SCENARIOS and scenario not in WILD_SCENARIOS:
        raise UsageError(f"unknown scenario {scenario!r}; known: {', '.join([*SCENARIOS, *WILD_SCENARIOS])}")
    written = run_simulation(
        scenario, seed=seed, out=out, minutes=minutes, scale=scale, noise_seed=noise_seed,
        latency_regression=latency_regression, regression_endpoint=regression_endpoint,
    )
    for path in written:
        typer.echo(str(path))


@app.command(epilog="\b\nExamples:\n  rca formats\n  rca analyze app.log --input-format syslog")
@_error_boundary
def formats() -> None:
    """List the input formats rca reads, with what each one is."""
    from rca.parsers import all_parsers

    for parser in all_parsers():
        typer.echo(f"{parser.name:22} {parser.description}")


def _compare_sides(args: list[str]) -> dict[str, list[str]]:
    sides: dict[str, list[str]] = {"baseline": [], "candidate": []}
    current = None
    for token in args:
        name, eq, value = token.partition("=")
        if name in ("--baseline", "--candidate"):
            current = name[2:]
            if eq:
                sides[current].append(value)
        elif token.startswith("-") and token != "-":
            raise UsageError(f"unknown option {token!r} (see rca compare --help)")
        elif current is None:
            raise UsageError(f"{token!r}: give inputs after --baseline or --candidate")
        else:
            sides[current].append(token)
    for side, paths in sides.items():
        if not paths:
            raise UsageError(f"give --baseline INPUTS... and --candidate INPUTS... (no {side} inputs)")
    if "-" in sides["baseline"] and "-" in sides["candidate"]:
        raise UsageError("'-' (stdin) can feed only one side")
    return sides


def _write_file(path: Path, text: str, what: str, append: bool = False) -> None:
    try:
        with open(path, "a" if append else "w", encoding="utf-8") as out:
            out.write(text)
    except OSError as exc:
        raise UsageError(f"{path}: cannot write {what}: {exc.strerror or exc}") from None


COMPARE_EXAMPLES = """\b
Examples:
  rca compare --baseline main/ --candidate pr/ --fail-on 'p95>+20%' --fail-on 'error_rate>+1pp'
  rca compare --baseline base/*.json --candidate cand/*.json --fail-on 'endpoint:/api/orders p99>+50ms'
  rca compare --baseline base/ --candidate cand/ -f markdown -o compare.md --junit gates.xml
\b
Gates from a file when --fail-on is not given:
  rca.toml:        [gates]
                   fail_on = ["p95>+20%"]
  pyproject.toml:  [tool.rca.gates]
                   fail_on = ["p95>+20%"]"""


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
             options_metavar="--baseline INPUTS... --candidate INPUTS... [OPTIONS]", epilog=COMPARE_EXAMPLES)
@_error_boundary
def compare(
    ctx: typer.Context,
    fail_on: Annotated[list[str] | None, typer.Option("--fail-on", metavar="GATE", help="A gate, repeatable: 'p95>+20%', 'p99>+50ms', 'error_rate>+1pp', 'count<-50%', scoped 'endpoint:/api/x p95>+10%' or 'service:users p95>+10%'. Without it, gates come from rca.toml [gates] or pyproject.toml [tool.rca.gates] fail_on = [...].")] = None,
    output_format: Annotated[OutputFormat, typer.Option("--format", "-f", help="Report format.")] = OutputFormat.terminal,
    output: Annotated[Path | None, typer.Option("--output", "-o", metavar="FILE", help="Write the report to this file.")] = None,
    junit: Annotated[Path | None, typer.Option("--junit", metavar="FILE", help="Also write JUnit XML (one test case per gate and endpoint or service).")] = None,
    summary: Annotated[Path | None, typer.Option("--summary", metavar="FILE", help="Append the Markdown report to this file (default: $GITHUB_STEP_SUMMARY when set).")] = None,
    min_samples: Annotated[int, typer.Option("--min-samples", min=2, metavar="N", help="Below this many samples a side, say 'not enough data' instead of judging.")] = 30,
    strict: Annotated[bool, typer.Option("--strict", help="Fail (exit 1) when an endpoint or service has not enough data.")] = False,
    color: Annotated[ColorMode, typer.Option("--color", help="Color in the terminal report.")] = ColorMode.auto,
    quiet: QuietOpt = False,
) -> None:
    """Compare a candidate with a baseline and gate the pipeline.

    \b
    Inputs (required):
      --baseline INPUTS...   the reference run: files, directories, globs, as `rca analyze` reads
      --candidate INPUTS...  the run to judge, in the same forms

    Exit 0 when every gate passes, 1 when one fails (a significant regression; or, with --strict, too
    little data), 2 on bad usage or input (a gate that matches nothing included).
    """
    from rca import compare as cmp
    from rca.pipeline import AnalyzeOptions, load
    from rca.render import compare as out

    _imports_done()

    sides = _compare_sides(ctx.args)
    for path, what in ((output, "the report"), (junit, "JUnit XML"), (summary, "the summary")):
        _check_writable(path, what)
        _check_not_an_input(path, sides["baseline"] + sides["candidate"], what)
    texts = list(fail_on or []) or cmp.gates_from_config(Path.cwd())
    gates = [cmp.parse_gate(t) for t in texts]
    err = _stderr_console(quiet)
    data = {}
    for side, inputs in sides.items():
        try:
            data[side] = load(inputs, AnalyzeOptions())
        except InputError as exc:
            raise InputError(f"{side}: {exc}", hint=exc.hint) from None
        cmp.check_comparable(data[side], side)
    _warn_inputs(err, data["baseline"].inputs + data["candidate"].inputs)
    result = cmp.compare_datasets(data["baseline"], data["candidate"], gates, min_samples=min_samples, strict=strict)

    markdown = out.render_markdown(result)
    if output_format is OutputFormat.json:
        report: str | bytes = out.render_json(result)
    elif output_format is OutputFormat.markdown:
        report = markdown
    else:
        report = ""
    try:
        with _reader_may_stop():  # a closed pipe keeps the verdict: exit 1 for a failed gate, 0 otherwise
            _write_comparison(result, report, output_format, output, color)
    except OSError as exc:
        raise UsageError(f"{output or 'stdout'}: cannot write the report: {exc.strerror or exc}") from None
    if junit is not None:
        _write_file(junit, out.render_junit(result), "JUnit XML")
    summary_path = summary or (Path(os.environ["GITHUB_STEP_SUMMARY"]) if os.environ.get("GITHUB_STEP_SUMMARY") else None)
    if summary_path is not None:
        try:
            out.append_step_summary(markdown, summary_path)
        except OSError as exc:
            err.print(f"rca: warning: {summary_path}: cannot append the job summary: {exc.strerror or exc}", markup=False)
    if os.environ.get("GITHUB_ACTIONS"):
        for line in out.github_annotations(result):  # the runner reads workflow commands on stderr too
            print(line, file=sys.stderr)
    if os.environ.get("GITHUB_OUTPUT"):
        try:
            _write_file(Path(os.environ["GITHUB_OUTPUT"]), "".join(f"{line}\n" for line in out.github_outputs(result)), "step outputs", append=True)
        except UsageError as exc:
            err.print(f"rca: warning: {exc}", markup=False)
    for note in result.notes:
        err.print(f"rca: note: {note}", markup=False)
    for note in result.not_enough[:10]:
        err.print(f"rca: not enough data: {note}", markup=False)
    if len(result.not_enough) > 10:
        err.print(f"rca: not enough data: ... and {len(result.not_enough) - 10} more", markup=False)
    if result.failed:
        raise typer.Exit(ExitCode.GATE_FAILED)


def _write_comparison(result: Comparison, report: str | bytes, output_format: OutputFormat, output: Path | None,
                      color: ColorMode) -> None:
    from rca.render import compare as out

    if output_format is OutputFormat.terminal:
        console = _terminal_console(output, color)
        try:
            out.render_terminal(result, console)
        finally:
            if output is not None:
                console.file.close()
    else:
        _write_output(report, output)


def main() -> None:
    """Console entry point: runs the app, whose commands map every error to an exit code (`_error_boundary`).

    `--debug` is a root option; it is also accepted anywhere before `--` (`rca analyze x --debug`) and
    moved to the front here. No arguments print the help and exit 2.
    """
    args = sys.argv[1:]
    # Start-up, measured on `rca ingest` (it counts at a million lines, ~1 s): the imports make some
    # 300,000 objects and no garbage, yet the collector walks them again and again (~5% of the run), so it
    # is off until the command's imports are done (`_imports_done`); OpenBLAS starts a thread per core when
    # numpy is imported (~30 ms) for the matrix products rca never makes (its dot products are of vectors).
    if next((a for a in args if not a.startswith("-")), None) in ("ingest", "analyze", "compare"):
        gc.disable()
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    if not args:  # the help on stdout, exit 2 (click's plain help layout would print it to stderr)
        app(args=["--help"], prog_name="rca", standalone_mode=False)
        sys.exit(ExitCode.USAGE)
    end = args.index("--") if "--" in args else len(args)
    if "--debug" in args[:end]:
        args = ["--debug", *(a for i, a in enumerate(args) if not (a == "--debug" and i < end))]
    app(args=args, prog_name="rca")


if __name__ == "__main__":
    main()
