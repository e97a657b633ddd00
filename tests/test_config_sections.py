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


def test_every_driver_timing_is_settable_in_the_modem_section(tmp_path: Path) -> None:
    from dialbot.fleet import Fleet
    from dialbot.fleet.inventory import Bank, ModemEntry
    from dialbot.flows.station import fleet_settings

    cfg = tmp_path / "dialbot.toml"
    cfg.write_text(
        "[modem]\ncommand_timeout = 7\nsend_timeout = 90\nussd_timeout = 40\n"
        "concat_timeout = 300\ncheck_interval = 20\nbackoff_initial = 1\nbackoff_max = 60\n"
        "quarantine_after = 5\n",
        encoding="utf-8",
    )
    config = load_config(cfg)
    settings = fleet_settings(config)
    assert (settings.command_timeout, settings.send_timeout, settings.ussd_timeout) == (7, 90, 40)
    assert (settings.concat_timeout, settings.check_interval) == (300, 20)
    assert (settings.backoff_initial, settings.backoff_max, settings.quarantine_after) == (1, 60, 5)
    assert fleet_settings(config, timeout=3).command_timeout == 3  # --timeout wins
    bank = Bank("b", None, "at", (ModemEntry(slot=1, port="/dev/null"),), tmp_path / "b.toml")
    driver = Fleet([bank], config.carrier, settings)._settings_for(bank.modems[0])
    assert (driver.send_timeout, driver.ussd_timeout, driver.concat_timeout) == (90, 40, 300)
    assert (driver.command_timeout, driver.check_interval, driver.quarantine_after) == (7, 20, 5)


@pytest.mark.parametrize("text", ["[modem]\nsend_timeout = 0\n", "[modem]\nbogus = 1\n",
                                  "[modem]\nquarantine_after = 1.5\n"])  # fmt: skip
def test_bad_modem_timing_is_refused(tmp_path: Path, text: str) -> None:
    cfg = tmp_path / "dialbot.toml"
    cfg.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_config(cfg)
    assert "modem." in str(err.value)


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
