"""Settings: a TOML file, the environment over it, secrets from files, and what production refuses.

Pure: files in a temporary folder, an explicit environment mapping; no server is started.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
import tomllib
from pathlib import Path

import pytest

from dialer.commands.config import template
from dialer.provision.credentials import CredentialStore, sip_credentials
from dialer.provision.sip_endpoints import endpoint_plan
from dialer.provision.trunks import Transport, Trunk, TrunkAuth
from dialer.settings import (
    DEVELOPMENT_ARI_PASSWORD,
    ENVIRONMENT,
    Settings,
    SettingsError,
    from_environment,
    parse_config,
    secret_fields,
    setting_sources,
)

pytestmark = pytest.mark.timeout(30)

TODAY = dt.date(2026, 3, 2)
VOUCHED = """
[[caller_ids]]
number = "+12125550123"
owner = "Example Insurance Agency LLC"
vouched_by = "Jane Smith, compliance officer"
vouched_on = 2026-03-01
"""


def write(tmp_path: Path, text: str, name: str = "dialer.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def secret(tmp_path: Path, name: str, value: str) -> Path:
    path = tmp_path / name
    path.write_text(value + "\n")
    path.chmod(0o600)
    return path


def production(tmp_path: Path, extra: str = "") -> str:
    ari = secret(tmp_path, "ari-password", "a-long-ari-secret-of-ours")
    carrier = secret(tmp_path, "carrier-password", "carrier-secret-123")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    return f"""
mode = "production"
[ari]
password_file = "{ari}"
[sip]
bind = "0.0.0.0"
tls = true
srtp = true
domain = "pbx.example.com"
[tls]
cert_file = "{cert}"
key_file = "{key}"
[calling]
default_caller_id = "+12125550123"
[[trunks]]
name = "carrier-a"
host = "sip.carrier.example"
transport = "tls"
username = "agency123"
password_file = "{carrier}"
calls_per_second = 5
{VOUCHED}
[[dids]]
number = "+12125550123"
campaign = "medsupp"
{extra}
"""


# ---- the demo and the tests keep working with no file ----------------------------------------
def test_no_file_and_no_environment_gives_the_development_defaults() -> None:
    settings = from_environment({})
    assert settings == Settings()
    assert settings.development and settings.config_file == ""
    assert settings.problems(TODAY) == []
    assert settings.sip_bind == "127.0.0.1" and settings.ws_url == "ws://127.0.0.1:8088/ws"


def test_the_environment_names_the_file_and_overrides_it(tmp_path: Path) -> None:
    path = write(tmp_path, '[ari]\nport = 9000\nuser = "ops"\n[http]\nport = 9090\n')
    settings = from_environment({"DIALER_CONFIG": str(path), "DIALER_HTTP_PORT": "9191"})
    assert (settings.ari_port, settings.ari_user, settings.http_port) == (9000, "ops", 9191)
    assert settings.config_file == str(path)
    assert from_environment({"DIALER_CONFIG": str(path)}, ari_port=9500).ari_port == 9500
    sources = setting_sources({"DIALER_CONFIG": str(path), "DIALER_HTTP_PORT": "9191"})
    assert sources == {"ari_port": str(path), "ari_user": str(path), "http_port": "DIALER_HTTP_PORT"}


def test_an_empty_dialer_config_reads_no_file(tmp_path: Path) -> None:
    assert from_environment({"DIALER_CONFIG": ""}) == Settings()


def test_every_table_and_alias_reaches_its_field(tmp_path: Path) -> None:
    values = parse_config(tomllib.loads("""
agents = 3
[database]
dsn = "postgresql://u@db.example:5432/crm"
[paths]
state_dir = "/srv/state"
recordings_dir = "/srv/rec"
[phones]
supervisors = 2
[sip]
bind = "10.0.0.5"
tls_port = 5062
permit = ["203.0.113.0/24"]
[network]
local_nets = ["10.0.0.0/8"]
[wss]
enabled = true
port = 8443
[gate]
flags = "pa_sb992"
[log]
level = "debug"
"""))
    assert values == {"agents": 3, "pg_dsn": "postgresql://u@db.example:5432/crm", "state_root": "/srv/state",
                      "recordings_root": "/srv/rec", "supervisors": 2, "sip_bind": "10.0.0.5", "sip_tls_port": 5062,
                      "sip_permit": ("203.0.113.0/24",), "local_nets": ("10.0.0.0/8",), "wss": True,
                      "wss_port": 8443, "gate_flags": "pa_sb992", "log_level": "debug"}


def test_secrets_come_from_files_in_the_file_and_in_the_environment(tmp_path: Path) -> None:
    ari = secret(tmp_path, "ari", "from-the-file-secret")
    dsn = secret(tmp_path, "dsn", "postgresql://dialer:s3cret@127.0.0.1/dialer")
    path = write(tmp_path, f'[ari]\npassword_file = "{ari}"\n[database]\ndsn_file = "{dsn}"\n')
    settings = from_environment({"DIALER_CONFIG": str(path)})
    assert settings.ari_password == "from-the-file-secret"
    assert settings.pg_dsn.endswith(":s3cret@127.0.0.1/dialer")
    other = secret(tmp_path, "other", "from-the-environment")
    assert from_environment({"DIALER_CONFIG": str(path), "DIALER_ARI_PASSWORD_FILE": str(other)}).ari_password \
        == "from-the-environment"
    # never in repr
    assert "from-the-file-secret" not in repr(settings) and "s3cret" not in repr(settings)
    assert {"ari_password", "pg_dsn", "redis_url"} <= secret_fields()


def test_trunk_passwords_come_from_files_and_stay_out_of_repr(tmp_path: Path) -> None:
    path = write(tmp_path, production(tmp_path))
    settings = from_environment({"DIALER_CONFIG": str(path)})
    trunk = settings.trunks[0]
    assert (trunk.name, trunk.transport, trunk.auth, trunk.password) == (
        "carrier-a", Transport.TLS, TrunkAuth.DIGEST, "carrier-secret-123")
    assert trunk.effective_port == 5061 and trunk.calls_per_second == 5.0
    assert "carrier-secret-123" not in repr(settings)
    # With trunks, leads go through the first one unless trunk_endpoint says otherwise.
    assert settings.trunk_endpoint == "carrier-a"


@pytest.mark.parametrize(("text", "message"), [
    ("[ari]\nport = 99999\n", r"\[ari\] port must be a port between 1 and 65535, got 99999"),
    ("[ari]\nport = \"x\"\n", r"\[ari\] port must be a whole number"),
    ("[sip]\ntls = \"perhaps\"\n", r"\[sip\] tls must be true or false"),
    ("[sip]\nbogus = 1\n", r"unknown setting \[sip\] bogus"),
    ("nonsense = 1\n", r"unknown setting nonsense"),
    ("[ari]\npassword_file = \"/nonexistent/ari\"\n", r"names /nonexistent/ari, which cannot be read"),
    ("[[trunks]]\nhost = \"x\"\n", r"\[\[trunks\]\] #1 needs at least name and host"),
    ("[[trunks]]\nname = \"a1\"\nhost = \"x\"\ntransport = \"carrier-pigeon\"\n", r"transport: udp, tcp or tls"),
    ("[[trunks]]\nname = \"a1\"\nhost = \"x\"\ncolour = \"blue\"\n", r"unknown key 'colour'"),
    ("mode = [\n", r"is not valid TOML"),
])
def test_a_bad_file_is_one_sentence_naming_the_key(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(SettingsError, match=message):
        from_environment({"DIALER_CONFIG": str(path)})


def test_a_missing_file_says_how_to_write_one(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="dialer config init --path"):
        from_environment({"DIALER_CONFIG": str(tmp_path / "none.toml")})


def test_bad_environment_values_name_the_variable() -> None:
    with pytest.raises(SettingsError, match="DIALER_SIP_TLS_PORT must be a port"):
        from_environment({"DIALER_SIP_TLS_PORT": "0"})
    assert from_environment({"DIALER_LOCAL_NETS": "10.0.0.0/8, 192.168.0.0/16"}).local_nets == (
        "10.0.0.0/8", "192.168.0.0/16")


# ---- the template: every setting, and it parses -------------------------------------------
def test_config_init_template_has_every_setting_and_parses(tmp_path: Path) -> None:
    text = template(tmp_path / "secrets")
    written = set(re.findall(r"^#? ?([a-z_]+) =", text, re.M))
    data = tomllib.loads(text)
    # The ARI password is read from the file init generates; the rest parses as it stands.
    values = parse_config(data | {"ari": {k: v for k, v in data["ari"].items() if k != "password_file"}})
    values["ari_password"] = "x"  # read from the file in real use
    fields = {field.name for field in dataclasses.fields(Settings)} - {"config_file", "trunks", "caller_ids", "dids",
                                                                       "nodes"}
    assert fields <= set(values) | {"trunk_endpoint"}
    assert "trunk_endpoint" in written
    trunk_keys = {f.name for f in dataclasses.fields(Trunk)}
    assert trunk_keys - {"password"} <= written and "password_file" in written
    assert {"number", "owner", "vouched_by", "vouched_on", "campaign"} <= written
    assert {"name", "ari_url", "ari_user", "ari_password_file", "max_calls", "max_setups", "setups_per_second"} <= written


# ---- production: refusals in one sentence ---------------------------------------------------
def test_a_complete_production_file_has_no_problem(tmp_path: Path) -> None:
    settings = from_environment({"DIALER_CONFIG": str(write(tmp_path, production(tmp_path)))})
    assert settings.problems(TODAY) == []


def test_production_refuses_the_default_ari_password(tmp_path: Path) -> None:
    settings = dataclasses.replace(
        from_environment({"DIALER_CONFIG": str(write(tmp_path, production(tmp_path)))}),
        ari_password=DEVELOPMENT_ARI_PASSWORD)
    first = settings.problems(TODAY)[0]
    assert first == ("ARI still has a default or short password: put a secret of your own (12 characters or more) "
                     "in a file and set [ari] password_file (or DIALER_ARI_PASSWORD_FILE).")


def test_production_refuses_plain_sip_on_a_public_address(tmp_path: Path) -> None:
    settings = from_environment({"DIALER_CONFIG": str(write(tmp_path, production(tmp_path))),
                                 "DIALER_SIP_TLS": "false", "DIALER_SIP_SRTP": "false"})
    problems = settings.problems(TODAY)
    assert problems[0] == ("SIP would listen on public address 0.0.0.0 without TLS: set [sip] tls = true with "
                           "[tls] cert_file and key_file, or bind SIP to a private address.")
    # The same settings in development are allowed (a lab machine).
    assert not [p for p in dataclasses.replace(settings, mode="development").problems(TODAY) if "public" in p]
    # A private address without TLS is a floor's LAN: allowed.
    private = dataclasses.replace(settings, sip_bind="10.0.0.5", trunks=())
    assert not [p for p in private.problems(TODAY) if "TLS" in p and "listen" in p]


def test_production_refuses_an_unvouched_default_caller_id(tmp_path: Path) -> None:
    settings = from_environment({"DIALER_CONFIG": str(write(tmp_path, production(tmp_path))),
                                 "DIALER_CALLER_ID": "+13125550199"})
    assert any("Caller ID +13125550199 is not among the agency's vouched numbers" in p
               for p in settings.problems(TODAY))
    assert settings.caller_id_problem("+12125550123") is None
    assert "16 CFR 310.4(a)(8)" in (settings.caller_id_problem("anonymous") or "")


def test_tls_settings_need_a_certificate_and_trunks_need_tls(tmp_path: Path) -> None:
    settings = Settings(sip_tls=True)
    assert any("cert_file and key_file are not set" in p for p in settings.problems(TODAY))
    text = production(tmp_path).replace("tls = true\nsrtp = true", "tls = false")
    problems = from_environment({"DIALER_CONFIG": str(write(tmp_path, text))}).problems(TODAY)
    assert any("Trunk 'carrier-a' uses TLS: set [sip] tls = true" in p for p in problems)


def test_browser_phones_are_handed_the_stun_server_and_desk_phones_the_tls_port(tmp_path: Path) -> None:
    path = tmp_path / "sip-credentials.json"
    CredentialStore.provision(path, endpoint_plan(1, 0), realm="dialer", sip_domain="pbx.example.com", udp_port=5060,
                              ws_url="wss://pbx.example.com:8089/ws", tls_port=5061,
                              ice_servers=("stun:stun.example.com:3478",))
    web, desk = sip_credentials("agent1001-web", path), sip_credentials("agent1001", path)
    assert (web.ws_url, web.ice_servers, web.tls_port) == ("wss://pbx.example.com:8089/ws",
                                                           ("stun:stun.example.com:3478",), None)
    assert (desk.ws_url, desk.ice_servers, desk.tls_port, desk.sip_uri) == (None, (), 5061,
                                                                            "sip:agent1001@pbx.example.com")


def test_a_reverse_proxy_names_the_wss_url_browsers_use() -> None:
    proxied = from_environment({"DIALER_WS_PUBLIC_URL": "wss://pbx.example.com/ws"})
    assert proxied.ws_url == "wss://pbx.example.com/ws" and not proxied.wss
    assert "must be a wss:// URL" in Settings(ws_public_url="ws://pbx.example.com/ws").problems(TODAY)[0]


def test_readme_lists_every_variable() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    table = readme[readme.index("## Settings"):readme.index("## Layout")]
    assert [variable for variable in ENVIRONMENT if f"`{variable}`" not in table] == []
