from pathlib import Path

import pytest

from dialbot.config import load_config
from dialbot.errors import ConfigError


def test_alerts_and_broker_sections(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DIALBOT_BROKER_URL", raising=False)
    cfg = tmp_path / "dialbot.toml"
    cfg.write_text(
        '[alerts]\nwebhook_url = "http://127.0.0.1:9/hook"\n'
        '[broker]\nurl = "redis://127.0.0.1:6379/0"\nheartbeat_s = 5\n',
        encoding="utf-8",
    )
    config = load_config(cfg)
    assert config.alerts.webhook_url == "http://127.0.0.1:9/hook"
    assert config.broker_url == "redis://127.0.0.1:6379/0"
    monkeypatch.setenv("DIALBOT_BROKER_URL", "amqp://guest:guest@127.0.0.1:5672//")
    assert load_config(cfg).broker_url.startswith("amqp://")


@pytest.mark.parametrize(
    ("text", "key"),
    [("[alerts]\nbogus = 1\n", "alerts.bogus"), ("[broker]\nurl = 5\n", "broker.url")],
)
def test_bad_alerts_or_broker_names_file_and_key(tmp_path: Path, text: str, key: str) -> None:
    cfg = tmp_path / "dialbot.toml"
    cfg.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_config(cfg)
    assert str(cfg) in str(err.value) and key in str(err.value)


def test_probe_follow_days(tmp_path: Path) -> None:
    """The month after: how many days each order is followed (0, the default: none)."""
    cfg = tmp_path / "dialbot.toml"
    cfg.write_text("[probe]\ntime_scale = 0.5\n", encoding="utf-8")
    assert load_config(cfg).probe.follow_days == 0.0
    cfg.write_text("[probe]\nfollow_days = 35\n", encoding="utf-8")
    assert load_config(cfg).probe.follow_days == 35.0
    for bad in ("-1", '"a month"', "true"):
        cfg.write_text(f"[probe]\nfollow_days = {bad}\n", encoding="utf-8")
        with pytest.raises(ConfigError, match="probe.follow_days"):
            load_config(cfg)
