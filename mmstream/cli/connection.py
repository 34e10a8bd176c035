"""Which cluster `mmctl` acts on: the Kafka tools' ``--bootstrap-server`` and
``--command-config`` (global, and on each Kafka command), and which dotenv file it reads.

Both options become the MM_KAFKA__* variables they stand for, in this process only, before
the settings are read: every command and library sees one configuration, the one printed
by :func:`announce` before a change. An option names a setting; a property of the file that
no setting carries is refused (exit 2), never dropped: a silently ignored
``ssl.truststore.location`` would connect without the CA the SRE meant.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import click

from mmstream import settings as settings_module

_META = "mmstream.cli.connection"

# Client properties (the Java tools' names and librdkafka's) -> our Kafka setting.
_DIRECT = {
    "bootstrap.servers": "BOOTSTRAP_SERVERS",
    "security.protocol": "SECURITY_PROTOCOL",
    "sasl.mechanism": "SASL_MECHANISM",
    "sasl.username": "SASL_USERNAME",
    "sasl.password": "SASL_PASSWORD",
    "ssl.ca.location": "SSL_CA_FILE",
    "ssl.certificate.location": "SSL_CERT_FILE",
    "ssl.key.location": "SSL_KEY_FILE",
    "ssl.key.password": "SSL_KEY_PASSWORD",
}
# Read together with their location (PEM only: librdkafka reads no Java keystore).
_STORE_TYPES = {"ssl.truststore.type", "ssl.keystore.type"}
_JAAS_MODULES = ("PlainLoginModule", "ScramLoginModule")
_JAAS_OPTION = re.compile(r'(\w+)\s*=\s*"((?:[^"\\]|\\.)*)"')


def _jaas(value: str) -> dict[str, str]:
    """username/password of a PLAIN or SCRAM ``sasl.jaas.config`` line."""
    if not any(m in value for m in _JAAS_MODULES):
        raise click.BadParameter(
            "sasl.jaas.config: only PlainLoginModule and ScramLoginModule (username/password) "
            "are supported; OAUTHBEARER and Kerberos have no setting here",
            param_hint="--command-config",
        )
    options = {
        k: v.replace('\\"', '"').replace("\\\\", "\\") for k, v in _JAAS_OPTION.findall(value)
    }
    if "username" not in options or "password" not in options:
        raise click.BadParameter(
            'sasl.jaas.config needs username="..." and password="..."',
            param_hint="--command-config",
        )
    return {"SASL_USERNAME": options["username"], "SASL_PASSWORD": options["password"]}


def command_config(path: Path) -> dict[str, str]:
    """MM_KAFKA__* variables from a Java client properties file (kafka-*.sh --command-config).

    Refuses (click.BadParameter, exit 2) every property no Kafka setting carries, naming it.
    """
    import javaproperties

    try:
        with path.open(encoding="utf-8") as fh:
            props = {k.strip(): v.strip() for k, v in javaproperties.load(fh).items()}
    except OSError as exc:
        raise click.BadParameter(
            f"cannot read {path}: {exc.strerror}", param_hint="--command-config"
        ) from None
    out: dict[str, str] = {}
    unknown = []
    for key, value in props.items():
        if key in _DIRECT:
            out[_DIRECT[key]] = value
        elif key == "sasl.jaas.config":
            out.update(_jaas(value))
        elif key == "ssl.endpoint.identification.algorithm":
            out["SSL_CHECK_HOSTNAME"] = "true" if value.lower() == "https" else "false"
        elif key in ("ssl.truststore.location", "ssl.keystore.location"):
            kind = props.get(key.replace("location", "type"), "JKS").upper()
            if kind != "PEM":
                raise click.BadParameter(
                    f"{key} is a {kind} store, which the clients here (librdkafka, Python ssl) "
                    "cannot read: export it as PEM (keytool -exportcert -rfc ... > ca.pem) and "
                    f"set {key.replace('location', 'type')}=PEM, or ssl.ca.location / "
                    "ssl.certificate.location + ssl.key.location",
                    param_hint="--command-config",
                )
            if key == "ssl.truststore.location":
                out["SSL_CA_FILE"] = value
            else:  # a PEM keystore holds the key and its certificate chain in one file
                out["SSL_CERT_FILE"] = out["SSL_KEY_FILE"] = value
        elif key in _STORE_TYPES:
            continue  # read with its location above
        else:
            unknown.append(key)
    if unknown:
        raise click.BadParameter(
            f"{path}: {', '.join(sorted(unknown))} {'has' if len(unknown) == 1 else 'have'} no "
            f"mmctl setting (supported: {', '.join(sorted([*_DIRECT, 'sasl.jaas.config', *_STORE_TYPES, 'ssl.truststore.location', 'ssl.keystore.location', 'ssl.endpoint.identification.algorithm']))}); "
            "remove it or set the MM_KAFKA__* setting it stands for",
            param_hint="--command-config",
        )
    return {f"MM_KAFKA__{k}": v for k, v in out.items()}


def _remember(ctx: click.Context, param: click.Parameter, value: object) -> None:
    if value is not None:
        ctx.meta.setdefault(_META, {})[param.name] = value


def _options(f):
    f = click.option(
        "--command-config",
        type=click.Path(dir_okay=False, path_type=Path),
        expose_value=False,
        callback=_remember,
        help="A Kafka client properties file (security.protocol, sasl.mechanism, "
        "sasl.jaas.config, ssl.truststore.location with type PEM, ...), as for "
        "kafka-*.sh; mapped onto MM_KAFKA__*.",
    )(f)
    return click.option(
        "--bootstrap-server",
        "bootstrap_server",
        metavar="HOST:PORT[,...]",
        expose_value=False,
        callback=_remember,
        help="The cluster (overrides MM_KAFKA__BOOTSTRAP_SERVERS).",
    )(f)


#: ``--bootstrap-server`` and ``--command-config`` on a command (also accepted before it).
connection_options = _options


def apply(ctx: click.Context) -> None:
    """Put the remembered options into this process's MM_KAFKA__* and re-read the settings:
    the file first, then --bootstrap-server (the flag wins, as with the Kafka tools)."""
    chosen = ctx.meta.get(_META, {})
    if not chosen:
        return
    env: dict[str, str] = {}
    if chosen.get("command_config") is not None:
        env.update(command_config(chosen["command_config"]))
    if chosen.get("bootstrap_server"):
        env["MM_KAFKA__BOOTSTRAP_SERVERS"] = chosen["bootstrap_server"]
    os.environ.update(env)
    settings_module.get_settings.cache_clear()


def use_env_file(path: Path | None) -> None:
    """Read ``path`` as the dotenv file, or none. mmctl never reads a ``.env`` it was not
    given: one left in the current folder (a compose .env, a developer's) would otherwise
    pick the cluster and credentials without a word."""
    settings_module.ENV_FILE = path
    settings_module.get_settings.cache_clear()
    if path is not None:
        click.echo(f"mmctl: settings from the environment and {path}", err=True)
    elif Path(".env").is_file():
        click.echo(
            "mmctl: ./.env is not read (mmctl reads a dotenv file only with --env-file)", err=True
        )


def announce(settings: settings_module.Settings, doing: str) -> None:
    """The cluster a change is about to act on, on stderr, before anything changes."""
    kafka = settings.kafka
    auth = f", SASL {kafka.sasl_mechanism} as {kafka.sasl_username}" if kafka.sasl_mechanism else ""
    click.echo(
        f"mmctl: {doing} on cluster {kafka.bootstrap_servers} ({kafka.security_protocol}{auth})",
        err=True,
    )
