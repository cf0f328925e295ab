"""`uniflow doctor`: every external tool is checked; MFA's absence is reported with the install steps."""

from typer.testing import CliRunner

from uniflow.cli import app


def test_doctor_reports_tools_and_how_to_install_mfa(monkeypatch) -> None:
    monkeypatch.setenv("UNIFLOW_MFA_BIN", "/nonexistent/mfa")
    result = CliRunner().invoke(app, ["doctor"], env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output  # MFA is optional: the offline aligner stands in
    for name in ("espeak-ng", "pocketsphinx aligner", "g2p", "mfa executable", "mfa acoustic model"):
        assert name in result.output
    assert "conda" in result.output and "montreal-forced-aligner" in result.output
    assert "english_us_arpa" in result.output
