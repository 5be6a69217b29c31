"""The daemon's YAML configuration: pydantic models plus a loader whose errors name keys.

`load_config(path)` raises `ConfigError` listing every problem as `<dotted.key.path>: <reason>`,
one per line, so `nmpi-failover check-config` can tell an operator exactly what to fix.
Validation runs in two passes: the structural pass (types, unknown keys, URLs, files) reports
everything it finds; the cross-key pass (preferred site, uniqueness, timing relations) runs
only on a structurally valid config, because its checks need every key to be there.
Relative file paths are resolved against the directory of the config file.
`check_files=False` leaves the files the config names alone (not opened, not required to
exist): for checking a config before it is installed, away from the host that holds them.
"""

from __future__ import annotations

import base64
import binascii
import difflib
import ipaddress
import os
import re
import ssl
import stat
import types
import typing
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import dns.exception
import dns.name
import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

DEFAULT_CONFIG_PATH = Path("/etc/nmpi-failover/config.yaml")

_SITE_NAME = re.compile(r"^[a-z][a-z0-9-]{0,30}$")
_HOST_LABEL = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")


class ConfigError(Exception):
    """The configuration cannot be used; `problems` holds one `<key>: <reason>` line each."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


# --- value checks shared by several models ------------------------------------------------


def _url(value: str, schemes: tuple[str, ...]) -> str:
    wanted = " or ".join(f"{s}://" for s in schemes)
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError on a malformed port
    except ValueError as exc:
        raise ValueError(f"must be an {wanted} URL ({exc}): {value!r}") from None
    if parts.scheme not in schemes or not parts.hostname:
        raise ValueError(f"must be an {wanted} URL with a host, got {value!r}")
    return value


def _https_url(value: str) -> str:
    return _url(value, ("https",))


def _http_url(value: str) -> str:
    return _url(value, ("http", "https"))


def _ip_address(value: str) -> str:
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        raise ValueError(f"must be an IPv4 or IPv6 address, got {value!r}") from None


def _hostname(value: str) -> str:
    name = value.rstrip(".")
    if not name or len(name) > 253 or not all(_HOST_LABEL.match(p) for p in name.split(".")):
        raise ValueError(f"must be a DNS host name, got {value!r}")
    return name.lower()


def _dns_name(value: str) -> str:
    """Absolute, lower-case DNS name with the trailing dot (RFC 2136 and Designate want it)."""
    try:
        name = dns.name.from_text(value)
    except dns.exception.DNSException as exc:
        raise ValueError(f"must be a DNS name ({exc}), got {value!r}") from None
    if name == dns.name.root:
        raise ValueError("must be a DNS name, not the root")
    return str(name.canonicalize())


def _resolve(path: Path, info: ValidationInfo) -> Path:
    base = info.context.get("base_dir") if isinstance(info.context, dict) else None
    if not path.is_absolute() and isinstance(base, Path):
        path = base / path
    return path


def _checks_files(info: ValidationInfo) -> bool:
    return not (isinstance(info.context, dict) and info.context.get("check_files") is False)


def _existing_file(path: Path, info: ValidationInfo) -> Path:
    path = _resolve(path, info)
    if not _checks_files(info):
        return path
    if not path.exists():
        raise ValueError(f"file not found: {path}")
    if not path.is_file():
        raise ValueError(f"not a regular file: {path}")
    if not os.access(path, os.R_OK):
        raise ValueError(f"not readable by this user: {path}")
    return path


# The daemon runs unattended: an encrypted key must fail, not make OpenSSL ask for a password
# on the terminal (what load_cert_chain does when no password is given).
NO_PASSWORD = ""


def read_secret(path: Path) -> bytes:
    """The TSIG secret: base64 text in its own file, so it never sits in the config."""
    return base64.b64decode("".join(path.read_text().split()), validate=True)


# --- models --------------------------------------------------------------------------------


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class WebVm(_Model):
    name: str = Field(min_length=1)  # Nova server name at the site
    # Reaches this VM directly (not through the floating IP), from the failover host.
    probe_url: str

    _probe_url = field_validator("probe_url")(_https_url)


class FloatingIpConfig(_Model):
    """Lets the site's floating IP move to a standby web VM through the site's own Neutron."""

    cloud: str = Field(min_length=1)  # clouds.yaml entry for this site's OpenStack API
    web_vms: list[WebVm]

    @field_validator("web_vms")
    @classmethod
    def _several_vms(cls, vms: list[WebVm]) -> list[WebVm]:
        if len(vms) < 2:
            raise ValueError(
                f"at least two web VMs are needed to move the floating IP, got {len(vms)}"
            )
        names = [vm.name for vm in vms]
        if len(set(names)) != len(names):
            raise ValueError(f"web VM names must be unique, got {', '.join(names)}")
        return vms


class SiteConfig(_Model):
    name: str
    # HTTPS /readyz through the site's floating IP: the path users take, seen from outside.
    probe_url: str
    # What the public DNS name points at while this site is active (its floating IP).
    address: str
    # TLS server name (SNI and Host) when probe_url uses an IP address.
    server_name: str | None = None
    ca_file: Path | None = None  # CA bundle for the probe; the system store when unset
    patroni_urls: list[str] = Field(min_length=1)  # Patroni REST APIs of this site's db VMs
    db_members: list[str] = Field(min_length=1)  # Patroni member names living at this site
    floating_ip: FloatingIpConfig | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _SITE_NAME.match(value):
            raise ValueError(
                f"must be lower-case letters, digits and '-', starting with a letter, got {value!r}"
            )
        return value

    _probe_url = field_validator("probe_url")(_https_url)
    _address = field_validator("address")(_ip_address)
    _server_name = field_validator("server_name")(_hostname)

    @field_validator("ca_file")
    @classmethod
    def _ca_file(cls, value: Path, info: ValidationInfo) -> Path:
        return _existing_file(value, info)

    @field_validator("patroni_urls")
    @classmethod
    def _patroni_urls(cls, urls: list[str]) -> list[str]:
        return [_http_url(u) for u in urls]


class TsigConfig(_Model):
    key_name: str
    algorithm: Literal["hmac-sha256", "hmac-sha384", "hmac-sha512", "hmac-sha224"] = "hmac-sha256"
    secret_file: Path  # base64 secret; kept out of the config so the config can be shared

    _key_name = field_validator("key_name")(_dns_name)

    @field_validator("secret_file")
    @classmethod
    def _secret_file(cls, value: Path, info: ValidationInfo) -> Path:
        path = _existing_file(value, info)
        if not _checks_files(info):
            return path
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & stat.S_IROTH:
            raise ValueError(
                f"readable by every user (mode {mode:04o}); restrict it, e.g. chmod 0600 {path}"
            )
        try:
            secret = read_secret(path)
        except (binascii.Error, ValueError, UnicodeDecodeError):
            raise ValueError(f"does not hold a base64 TSIG secret: {path}") from None
        if not secret:
            raise ValueError(f"is empty: {path}")
        return path


class Rfc2136Config(_Model):
    server: str  # the primary name server that accepts the update
    port: int = Field(default=53, ge=1, le=65535)
    zone: str
    tsig: TsigConfig

    @field_validator("server")
    @classmethod
    def _server(cls, value: str) -> str:
        try:
            return _ip_address(value)
        except ValueError:
            pass
        try:
            return _hostname(value)
        except ValueError:
            raise ValueError(f"must be an IP address or host name, got {value!r}") from None

    _zone = field_validator("zone")(_dns_name)


class DesignateConfig(_Model):
    # clouds.yaml entry; must not be a site's cloud, so moving the name needs no site API.
    cloud: str = Field(min_length=1)
    zone: str

    _zone = field_validator("zone")(_dns_name)


class DnsConfig(_Model):
    record: str  # the public name, e.g. nmpi.example.org.
    ttl: int = Field(default=30, ge=1, le=86400)
    rfc2136: Rfc2136Config | None = None
    designate: DesignateConfig | None = None

    _record = field_validator("record")(_dns_name)

    @model_validator(mode="after")
    def _one_provider(self) -> DnsConfig:
        if (self.rfc2136 is None) == (self.designate is None):
            raise ValueError("set exactly one provider: rfc2136 or designate")
        return self

    @property
    def zone(self) -> str:
        provider = self.rfc2136 or self.designate
        assert provider is not None  # guaranteed by _one_provider
        return provider.zone


class EtcdConfig(_Model):
    endpoints: list[str] = Field(min_length=1)
    lease_ttl: int = Field(default=10, ge=1)  # seconds
    key: str = "/nmpi-failover/leader"
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    # Keep the etcd raft leader off the database leader's site: on a neutral member (the
    # witness) when one answers (decide.MoveEtcdLeader). At most one attempt per
    # leader_move_interval seconds.
    keep_leader_off_database_sites: bool = True
    leader_move_interval: float = Field(default=60.0, gt=0)

    @field_validator("endpoints")
    @classmethod
    def _endpoints(cls, urls: list[str]) -> list[str]:
        return [_http_url(u) for u in urls]

    @field_validator("key")
    @classmethod
    def _key(cls, value: str) -> str:
        if not value.startswith("/") or value == "/":
            raise ValueError(f"must be an absolute key below '/', got {value!r}")
        return value

    @field_validator("ca_file", "cert_file", "key_file")
    @classmethod
    def _files(cls, value: Path, info: ValidationInfo) -> Path:
        return _existing_file(value, info)


class PatroniConfig(_Model):
    """TLS to Patroni's REST API. Patroni with `restapi.verify_client: optional` (the
    patroni role) requires a client certificate signed by its CA for POST /switchover and
    /failover; reads work without one. Without this section: the default CA bundle, no
    client certificate."""

    ca_file: Path | None = None  # CA bundle Patroni's certificates are checked against
    cert_file: Path | None = None  # client certificate (PEM), with key_file
    key_file: Path | None = None

    @field_validator("ca_file", "cert_file", "key_file")
    @classmethod
    def _files(cls, value: Path, info: ValidationInfo) -> Path:
        return _existing_file(value, info)


class Config(_Model):
    sites: list[SiteConfig]
    preferred_site: str  # where `failback` goes; never returned to automatically
    interval: float = Field(default=2.0, gt=0, le=300)  # seconds between rounds
    probe_timeout: float = Field(default=1.5, gt=0)  # seconds, for every read in a round
    failures_to_down: int = Field(default=3, ge=1)  # consecutive failed probes
    max_replica_lag_bytes: int = Field(default=1_048_576, ge=0)
    # How long to wait for Patroni to promote after asking, before asking again.
    switchover_timeout: float = Field(default=60.0, gt=0)
    dns: DnsConfig
    etcd: EtcdConfig
    patroni: PatroniConfig = PatroniConfig()
    journal: Path = Path("/var/lib/nmpi-failover/journal.jsonl")
    metrics_listen: str = "0.0.0.0:9469"

    @field_validator("sites", mode="before")
    @classmethod
    def _two_sites(cls, value: Any) -> Any:
        if isinstance(value, list) and len(value) != 2:
            raise ValueError(f"exactly two sites are required, got {len(value)}")
        return value

    @field_validator("journal")
    @classmethod
    def _journal(cls, value: Path, info: ValidationInfo) -> Path:
        return _resolve(value, info)

    @field_validator("metrics_listen")
    @classmethod
    def _listen(cls, value: str) -> str:
        host, sep, port = value.rpartition(":")
        if not sep or not port.isdigit() or not 1 <= int(port) <= 65535:
            raise ValueError(f"must be HOST:PORT with a port 1-65535, got {value!r}")
        if host.startswith("[") and host.endswith("]"):
            host = host[1:-1]
        try:
            _ip_address(host)
        except ValueError:
            raise ValueError(
                f"HOST must be an IP address ([...] for IPv6), got {value!r}"
            ) from None
        return value

    # --- lookups used by the decision logic and the adapters ---

    @property
    def site_names(self) -> tuple[str, str]:
        return (self.sites[0].name, self.sites[1].name)

    @property
    def round_deadline(self) -> float:
        """How long one round may read: past probe_timeout, well before the next round."""
        return (self.probe_timeout + self.interval) / 2

    @property
    def observation_max_age(self) -> float:
        """The oldest observation (counted from the start of its reads) that may be acted
        on: its reads may take the whole round deadline, and acting more than one interval
        after that means the loop stalled (a frozen process, an overloaded machine)."""
        return self.round_deadline + self.interval

    def site(self, name: str) -> SiteConfig:
        for site in self.sites:
            if site.name == name:
                return site
        raise KeyError(name)

    def other_site(self, name: str) -> str:
        first, second = self.site_names
        if name not in (first, second):
            raise KeyError(name)
        return second if name == first else first

    def site_of_member(self, member: str) -> str | None:
        """Which site a Patroni member lives at, by the configured db_members."""
        for site in self.sites:
            if member in site.db_members:
                return site.name
        return None

    @property
    def listen_host_port(self) -> tuple[str, int]:
        host, _, port = self.metrics_listen.rpartition(":")
        return host.strip("[]"), int(port)


# --- cross-key checks ----------------------------------------------------------------------


def _cross_key_problems(config: Config, check_files: bool = True) -> Iterator[str]:
    names = [s.name for s in config.sites]
    if len(set(names)) != len(names):
        yield f"sites[1].name: {names[1]!r} is already the name of sites[0]"
    elif config.preferred_site not in names:
        yield (
            f"preferred_site: {config.preferred_site!r} is not one of the sites "
            f"({', '.join(names)})"
        )
    if config.sites[0].address == config.sites[1].address:
        yield f"sites[1].address: {config.sites[1].address} is already the address of sites[0]"
    first_members = set(config.sites[0].db_members)
    shared = [m for m in config.sites[1].db_members if m in first_members]
    if shared:
        yield f"sites[1].db_members: {', '.join(shared)} also listed under sites[0].db_members"
    if config.probe_timeout >= config.interval:
        yield (
            f"probe_timeout: {config.probe_timeout:g} s must be shorter than interval "
            f"({config.interval:g} s), or a round's observation would be stale"
        )
    if config.switchover_timeout < config.interval:
        yield (
            f"switchover_timeout: {config.switchover_timeout:g} s must be at least interval "
            f"({config.interval:g} s)"
        )
    if config.etcd.lease_ttl < 2 * config.interval:
        yield (
            f"etcd.lease_ttl: {config.etcd.lease_ttl} s must be at least twice interval "
            f"({config.interval:g} s), so one slow round does not drop the lease"
        )
    if (config.etcd.cert_file is None) != (config.etcd.key_file is None):
        missing = "etcd.key_file" if config.etcd.key_file is None else "etcd.cert_file"
        yield f"{missing}: required when the other of etcd.cert_file/etcd.key_file is set"
    patroni = config.patroni
    if (patroni.cert_file is None) != (patroni.key_file is None):
        missing = "patroni.key_file" if patroni.key_file is None else "patroni.cert_file"
        yield f"{missing}: required when the other of patroni.cert_file/patroni.key_file is set"
    elif check_files:
        yield from _patroni_tls_problems(patroni)
    zone = dns.name.from_text(config.dns.zone)
    if not dns.name.from_text(config.dns.record).is_subdomain(zone):
        provider = "rfc2136" if config.dns.rfc2136 else "designate"
        yield f"dns.record: {config.dns.record} is not inside dns.{provider}.zone {zone}"
    if config.dns.designate is not None:
        cloud = config.dns.designate.cloud
        for i, site in enumerate(config.sites):
            if site.floating_ip is not None and site.floating_ip.cloud == cloud:
                yield (
                    f"dns.designate.cloud: {cloud!r} is also "
                    f"sites[{i}].floating_ip.cloud; moving the name must not need a site's API"
                )


def _patroni_tls_problems(patroni: PatroniConfig) -> Iterator[str]:
    """Load the files as the daemon will, so an unusable one fails here and not at start."""
    if patroni.ca_file is not None:
        try:
            ssl.create_default_context(cafile=str(patroni.ca_file))
        except OSError as exc:
            yield (
                f"patroni.ca_file: not a PEM CA certificate bundle ({_ssl_reason(exc)}): "
                f"{patroni.ca_file}"
            )
    if patroni.cert_file is not None and patroni.key_file is not None:
        try:
            ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).load_cert_chain(
                patroni.cert_file, patroni.key_file, password=NO_PASSWORD
            )
        except OSError as exc:
            yield (
                f"patroni.cert_file: cannot be loaded with patroni.key_file "
                f"({_ssl_reason(exc)}; a PEM certificate and its own unencrypted PEM key are "
                f"needed): {patroni.cert_file}, {patroni.key_file}"
            )


def _ssl_reason(exc: OSError) -> str:
    reason = getattr(exc, "reason", None)  # OpenSSL's short reason, e.g. KEY_VALUES_MISMATCH
    return str(reason) if reason else re.sub(r"\s*\(_ssl\.c:\d+\)$", "", str(exc.strerror or exc))


# --- error formatting ----------------------------------------------------------------------


def _dotted(loc: Sequence[int | str]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out or "(top level)"


def _model_at(loc: Sequence[int | str]) -> type[BaseModel] | None:
    """The model class that owns the last key of `loc`, to list the keys it allows."""
    annotation: Any = Config
    for part in loc[:-1]:
        annotation = _unwrap(annotation)
        if isinstance(part, int):
            args = typing.get_args(annotation)
            annotation = args[0] if args else None
        elif isinstance(annotation, type) and issubclass(annotation, BaseModel):
            field = annotation.model_fields.get(part)
            annotation = field.annotation if field else None
        else:
            return None
    annotation = _unwrap(annotation)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return None


def _unwrap(annotation: Any) -> Any:
    """`X | None` -> X, so optional sub-models are walked like required ones."""
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        real = [a for a in typing.get_args(annotation) if a is not type(None)]
        return real[0] if len(real) == 1 else annotation
    return annotation


def _describe(error: Mapping[str, Any]) -> str:
    loc = tuple(error["loc"])
    kind = error["type"]
    if kind == "extra_forbidden":
        model = _model_at(loc)
        allowed = sorted(model.model_fields) if model else []
        hint = difflib.get_close_matches(str(loc[-1]), allowed, n=1)
        reason = "unknown key"
        if hint:
            reason += f" (did you mean {hint[0]!r}?)"
        elif allowed:
            reason += f" (allowed: {', '.join(allowed)})"
    elif kind == "missing":
        reason = "required key is missing"
    else:
        reason = str(error["msg"]).removeprefix("Value error, ")
        if kind in ("model_type", "model_attributes_type", "dict_type"):
            reason = f"must be a mapping of keys, got {type(error['input']).__name__}"
    return f"{_dotted(loc)}: {reason}"


# --- loading -------------------------------------------------------------------------------


class _StrictLoader(yaml.SafeLoader):
    """Safe YAML that refuses duplicate keys, which PyYAML would silently overwrite."""


def _mapping_without_duplicates(loader: _StrictLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node)
        if key in seen:
            mark = key_node.start_mark
            raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", mark)
        seen.add(key)
    return loader.construct_mapping(node)


_StrictLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping_without_duplicates
)


def parse_config(data: Any, base_dir: Path | None = None, check_files: bool = True) -> Config:
    """Validate already-parsed YAML data; relative paths resolve against `base_dir`."""
    if not isinstance(data, dict):
        kind = "empty" if data is None else type(data).__name__
        raise ConfigError([f"(top level): must be a mapping of keys, got {kind}"])
    try:
        context = {"base_dir": base_dir or Path.cwd(), "check_files": check_files}
        config = Config.model_validate(data, context=context)
    except ValidationError as exc:
        raise ConfigError([_describe(e) for e in exc.errors()]) from None
    problems = list(_cross_key_problems(config, check_files))
    if problems:
        raise ConfigError(problems)
    return config


def load_config(path: Path | str, check_files: bool = True) -> Config:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read: {exc.strerror or exc}"]) from None
    try:
        data = yaml.load(text, Loader=_StrictLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        raise ConfigError([f"{path}: {where}{exc.problem or exc.context}"]) from None
    except yaml.YAMLError as exc:
        raise ConfigError([f"{path}: not valid YAML: {exc}"]) from None
    return parse_config(data, base_dir=path.resolve().parent, check_files=check_files)
