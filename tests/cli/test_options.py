"""Options generated from config dataclasses (``hf_spamguard.cli._options``): one declaration per option."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
import typer
from typer.testing import CliRunner

from hf_spamguard.cli import app
from hf_spamguard.cli._options import config_fields, config_options
from hf_spamguard.policy import DEFAULT_TARGETS, PolicyTargets


@dataclass
class Toy:
    input: str = field(metadata={"help": "Input file."})
    n: int = field(default=3, metadata={"help": "Rows.", "min": 1})
    share: float = field(
        default=0.15, metadata={"help": "Share.", "min": 0, "max": 1, "min_open": True, "max_open": True}
    )
    mode: str = field(default="words", metadata={"help": "Mode.", "choices": ("words", "full")})
    cs: tuple[float, ...] = field(default=(0.3, 1.0), metadata={"help": "Cs.", "cli": {"parse": "floats"}})
    soft: bool = field(default=False, metadata={"help": "Soft.", "cli": {"flag": "--soft/--hard"}})
    report: bool = field(default=True, metadata={"help": "Report."})
    limit: int | None = field(default=None, metadata={"help": "Limit."})


@pytest.fixture(scope="module")
def toy_app() -> typer.Typer:
    toy = typer.Typer(rich_markup_mode=None, pretty_exceptions_enable=False)
    seen: list = []

    @toy.command("run")
    @config_options(Toy)
    def run(config: Toy, verbose: bool = typer.Option(False, help="Talk.")) -> None:
        seen.append((config, verbose))

    @toy.command("other")
    def other() -> None:  # a second command keeps typer from collapsing the group
        pass

    toy.seen = seen  # type: ignore[attr-defined]
    return toy


CASES = [
    (["--input", "a"], Toy(input="a"), None),
    (
        [
            "--input",
            "a",
            "--n",
            "5",
            "--cs",
            "1,2",
            "--soft",
            "--no-report",
            "--limit",
            "4",
            "--mode",
            "full",
        ],
        Toy(input="a", n=5, cs=(1.0, 2.0), soft=True, report=False, limit=4, mode="full"),
        None,
    ),
    (["--input", "a", "--n", "0"], None, "--n: 0 is outside [1, inf]"),
    (["--input", "a", "--share", "1"], None, "--share: 1.0 is outside (0, 1)"),
    (["--input", "a", "--share", "0"], None, "--share: 0.0 is outside (0, 1)"),
    (["--input", "a", "--mode", "zz"], None, "'zz' is not one of words, full"),
    (["--input", "a", "--cs", "1,x"], None, "--cs: expected comma-separated numbers"),
    (["--input", "a", "--cs", "0,1"], None, "--cs: expected positive numbers"),
    ([], None, "Missing option '--input'"),
]


@pytest.mark.parametrize(("argv", "expected", "error"), CASES)
def test_generated_options(
    toy_app: typer.Typer, argv: list[str], expected: Toy | None, error: str | None
) -> None:
    toy_app.seen.clear()  # type: ignore[attr-defined]
    result = CliRunner().invoke(toy_app, ["run", *argv])
    if error is None:
        assert result.exit_code == 0, result.output
        assert toy_app.seen == [(expected, False)]  # type: ignore[attr-defined]
    else:
        assert result.exit_code != 0
        assert error in " ".join(result.output.split()), result.output
        assert toy_app.seen == []  # type: ignore[attr-defined]


def test_help_shows_every_field_with_its_help_and_default(toy_app: typer.Typer) -> None:
    text = " ".join(CliRunner().invoke(toy_app, ["run", "--help"]).output.split())
    for f in config_fields(Toy):
        assert f.metadata["help"] in text
    assert "One of: words, full." in text and "[default: 0.3,1]" in text and "--soft / --hard" in text


def test_a_field_without_help_is_refused() -> None:
    @dataclass
    class NoHelp:
        x: int = 1

    with pytest.raises(TypeError, match="metadata\\['help'\\]"):
        config_options(NoHelp)(lambda config: None)


def test_an_option_declared_twice_is_refused() -> None:
    with pytest.raises(TypeError, match="declared twice"):
        config_options(Toy)(lambda config, n=1: None)


# The real commands: each option comes from its config field (declared once).
COMMANDS = [
    (["baseline", "train"], [PolicyTargets, "hf_spamguard.baseline.model:BaselineTrainingArguments"]),
    (["label"], ["hf_spamguard.reviews.config:LabelingConfig"]),
    (["distill"], ["hf_spamguard.reviews.config:DistillConfig"]),
    (["score"], ["hf_spamguard.reviews.config:ScoreConfig"]),
]


def _resolve(ref):
    if isinstance(ref, str):
        import importlib

        module, _, name = ref.partition(":")
        return getattr(importlib.import_module(module), name)
    return ref


@pytest.mark.parametrize(("command", "configs"), COMMANDS)
def test_commands_take_their_options_from_the_configs(command: list[str], configs: list) -> None:
    text = " ".join(CliRunner().invoke(app, [*command, "--help"]).output.split())
    for cls in map(_resolve, configs):
        for f in config_fields(cls):  # the fields that are options (not cli_exclude)
            flag = f.metadata.get("cli", {}).get("flag", "--" + f.name.replace("_", "-")).split("/")[0]
            assert flag in text, f"{' '.join(command)} --help lacks {flag}"


def test_policy_target_defaults_come_from_policy() -> None:
    text = " ".join(CliRunner().invoke(app, ["baseline", "train", "--help"]).output.split())
    for name, value in DEFAULT_TARGETS.items():
        assert f"--{name.replace('_', '-')} <float> " in text and f"[default: {value}]" in text


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["distill", "--labels", "x", "--out", "y", "--validation-size", "-1"], "--validation-size"),
        (["score", "--model", "m", "--input", "i", "--out", "o", "--chunk-size", "0"], "--chunk-size"),
        (["label", "--teacher", "t", "--input", "i", "--out", "o", "--batch-size", "0"], "--batch-size"),
        (["baseline", "train", "--dataset", "d", "--out", "o", "--target-recall", "1.5"], "--target-recall"),
    ],
)
def test_numeric_options_are_validated_before_any_work(argv: list[str], message: str, tmp_path) -> None:
    result = CliRunner().invoke(app, argv)
    assert result.exit_code == 2 and message in result.output, result.output
