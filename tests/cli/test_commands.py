"""The command table: every command has help and its place, exit codes are defined once,
group modules import only ``common``, and a missing install extra is named, not a traceback."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from omniroute.adapters.cli import common, main
from omniroute.adapters.cli.main import COMMANDS, build_parser
from tests.support.simulation import simulate_small

CLI = Path(common.__file__).parent
EXAMPLE_POLICY = Path(__file__).resolve().parents[2] / "examples" / "policy.toml"
ALL_EXTRAS = [module for modules in common.EXTRAS.values() for module in modules]


def test_the_table_has_every_command_in_help_order() -> None:
    assert list(COMMANDS) == [
        "simulate", "demo", "replay", "validate-policy", "schema", "serve", "send", "tail",
        "gateway", "project", "report", "sql", "export", "customer", "ewt", "wallboard",
    ]  # fmt: skip
    usage = " ".join(build_parser().format_help().split())
    for name, command in COMMANDS.items():
        assert name in usage and command.help in usage


@pytest.mark.parametrize("name", list(COMMANDS))
def test_every_command_has_help(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    command = COMMANDS[name]
    assert command.help and command.description
    with pytest.raises(SystemExit) as exit_info:
        main([name, "--help"])
    assert exit_info.value.code == common.EXIT_OK
    out = capsys.readouterr().out
    assert out.startswith(f"usage: omniroute {name} ")
    assert command.description.split()[0] in out


def test_exit_codes_are_distinct_and_conventional() -> None:
    assert (common.EXIT_OK, common.EXIT_FAILED, common.EXIT_ERROR) == (0, 1, 2)


def test_each_command_names_the_extra_it_needs() -> None:
    extras = {name: command.extra for name, command in COMMANDS.items()}
    assert {name for name, extra in extras.items() if extra is None} == {
        "replay", "validate-policy", "schema"
    }  # fmt: skip
    assert {extras[n] for n in ("serve", "send", "tail")} == {"service"}
    assert {extras[n] for n in ("simulate", "demo", "project", "report", "sql")} == {"reporting"}
    assert set(extras.values()) - {None} <= set(common.EXTRAS)


GROUPS = ["simulate", "replay", "schema", "service", "report", "gateway", "wallboard", "ewt"]


@pytest.mark.parametrize("module", GROUPS)
def test_a_command_group_imports_no_other_command_group(module: str) -> None:
    tree = ast.parse((CLI / f"{module}.py").read_text())
    siblings = {
        node.module
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.level == 1
    }
    assert "common" in siblings
    assert not siblings & set(GROUPS), siblings  # helpers such as live.py are fine


def test_an_error_prints_on_stderr_with_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert common.print_error("no such thing") == common.EXIT_ERROR
    assert capsys.readouterr().err == "omniroute: error: no such thing\n"


# --- a missing extra, in a fresh interpreter with its modules made unimportable --------------


def run_without(modules: list[str], argv: list[str]) -> subprocess.CompletedProcess[str]:
    """``omniroute ARGV`` in a new interpreter where importing ``modules`` fails."""
    code = (
        "import sys\n"
        f"for m in {modules!r}: sys.modules[m] = None\n"
        "from omniroute.adapters.cli import main\n"
        f"sys.exit(main({argv!r}))\n"
    )
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )


@pytest.mark.parametrize(
    ("argv", "extra"),
    [
        (["report", "--db", "x.duckdb"], "reporting"),
        (["simulate", "small"], "reporting"),
        (["send", "events.jsonl"], "service"),
        (["tail", "--tenant", "acme"], "service"),
    ],
)
def test_a_missing_extra_is_named_with_the_install_command(argv: list[str], extra: str) -> None:
    done = run_without(list(common.EXTRAS[extra][:1]), argv)
    assert done.returncode == common.EXIT_ERROR
    assert "Traceback" not in done.stderr
    assert done.stderr.startswith(f"omniroute: error: {argv[0]} needs the '{extra}' extra (")
    assert done.stderr.rstrip().endswith(f"pip install 'omniroute[{extra}]'")


def test_the_core_commands_run_without_any_extra(tmp_path: Path) -> None:
    log = tmp_path / "small.olog"
    simulate_small(log)
    help_ = run_without(ALL_EXTRAS, ["--help"])
    assert help_.returncode == 0 and "validate-policy" in help_.stdout
    validate = run_without(ALL_EXTRAS, ["validate-policy", str(EXAMPLE_POLICY)])
    assert validate.returncode == 0, validate.stderr
    replay = run_without(ALL_EXTRAS, ["replay", str(log)])
    assert replay.returncode == 0, replay.stderr
    assert "replay OK" in replay.stdout


def test_python_dash_m_runs_the_command() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "omniroute.adapters.cli", "--version"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0 and done.stdout.startswith("omniroute ")


_LOGS_ONE_LINE = (
    "import logging, sys; from omniroute.adapters.cli import main; code = main(sys.argv[1:]); "
    "logging.getLogger('omniroute.probe').info('probe'); sys.exit(code)"
)


@pytest.mark.parametrize(
    "argv",
    [
        ["--log-level", "info", "--log-format", "json", "validate-policy", "FILE"],
        ["validate-policy", "FILE", "--log-level", "info", "--log-format", "json"],
        ["--log-format", "json", "validate-policy", "--log-level", "INFO", "FILE"],
    ],
)
def test_the_log_options_work_before_and_after_the_command(argv: list[str]) -> None:
    argv = [str(EXAMPLE_POLICY) if a == "FILE" else a for a in argv]
    done = subprocess.run(
        [sys.executable, "-c", _LOGS_ONE_LINE, *argv], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert '"message": "probe"' in done.stderr and '"level": "INFO"' in done.stderr
