"""The lab's regions (nmpi_devstack): the address plan, choosing and remembering the set, and
what each set means for processes, databases, configuration, catalog, clouds and schemas.

No services, no Docker: fakes stand in for Keystone's API and the Docker engine.
"""

from __future__ import annotations

import io
import ipaddress
import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml
from nmpi_devstack import addresses as a
from nmpi_devstack import chaos, cli, configs, infra, keystone, regions, schemas, seed, services
from nmpi_devstack.credentials import Secrets
from nmpi_devstack.lab import Lab
from nmpi_devstack.markers import Markers
from nmpi_devstack.paths import Paths
from nmpi_devstack.progress import Progress
from nmpi_devstack.settings import Settings
from nmpi_devstack.supervisor import LabError

THREE = ("castor", "jusuf", "witness")
SECRETS = Secrets(
    mariadb="db-pw", rabbitmq="mq-pw", admin="admin-pw", lab="lab-pw", service="svc-pw", rndc="k"
)
SETTINGS = Settings(
    compute_driver="nmpi_lab.LabDriver",
    volume_driver="nmpi_lab_openstack.cinder_driver.LoopFileDriver",
    mechanism_drivers="nmpi_lab",
    fip_plugin="",
    netagent="nmpi-lab-netagent",
    vm_image="nmpi/vm:test",
)


@pytest.fixture
def paths(tmp_path: Path) -> Paths:
    return Paths(tmp_path / "state")


# --- the address plan ------------------------------------------------------------------------


def test_witness_in_the_address_plan() -> None:
    witness = a.REGIONS["witness"]
    assert witness.api_host == "127.0.0.3"
    assert witness.external_cidr == ipaddress.IPv4Network("198.18.83.0/24")
    assert witness.tenant_range == ipaddress.IPv4Network("10.83.0.0/16")
    assert witness.docker_external_network == "nmpilab-witness-ext"
    assert witness.floating_ip_pool == (
        ipaddress.IPv4Address("198.18.83.10"),
        ipaddress.IPv4Address("198.18.83.250"),
    )
    assert list(a.REGIONS) == list(THREE)  # the plan's order: the primary region first


def test_regions_share_no_address() -> None:
    plan = list(a.REGIONS.values())
    assert len({r.api_host for r in plan}) == len(plan)
    ranges = [a.SERVICES_NETWORK] + [r.external_cidr for r in plan]
    ranges += [r.tenant_range for r in plan]
    for x, y in itertools.combinations(ranges, 2):
        assert not x.overlaps(y), (x, y)
    for r in plan:
        assert r.external_cidr.subnet_of(a.LAB_SUPERNET)
        assert ipaddress.IPv4Address(r.api_host).is_loopback


# --- choosing and remembering the set ----------------------------------------------------------


def test_parse_keeps_the_plans_order_and_drops_repeats() -> None:
    assert regions.parse("witness,castor, jusuf") == THREE
    assert regions.parse("jusuf castor jusuf") == ("castor", "jusuf")


@pytest.mark.parametrize("text", ["", " , ", "castor,atlantis"])
def test_parse_refuses_unknown_or_no_regions(text: str) -> None:
    with pytest.raises(LabError, match="castor, jusuf, witness"):
        regions.parse(text)


def test_choice_flag_then_environment_then_remembered_then_default(paths: Paths) -> None:
    assert regions.chosen(paths, None, {}) == (regions.DEFAULT, "default")
    assert regions.current(paths) == ("castor", "jusuf")
    regions.remember(paths, THREE)
    names, source = regions.chosen(paths, None, {})
    assert names == THREE
    assert source.startswith("remembered in ")
    assert regions.current(paths) == THREE
    env = {regions.ENV: "castor,jusuf"}
    assert regions.chosen(paths, None, env) == (("castor", "jusuf"), regions.ENV)
    assert regions.chosen(paths, "castor", env) == (("castor",), "--regions")
    assert regions.chosen(paths, "", {regions.ENV: " "})[0] == THREE


def test_a_damaged_regions_file_is_a_clear_error(paths: Paths) -> None:
    paths.home.mkdir(parents=True)
    paths.regions_file.write_text("castor,atlantis\n")
    with pytest.raises(LabError, match=r"regions: unknown region 'atlantis'"):
        regions.current(paths)


def test_cli_refuses_an_unknown_region_before_touching_the_lab(
    paths: Paths, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("NMPI_DEVSTACK_HOME", str(paths.home))
    assert cli.main(["up", "--regions", "castor,atlantis"]) == 1
    assert "unknown region 'atlantis'" in capsys.readouterr().err
    assert not paths.home.exists()


def test_cli_env_names_the_remembered_regions_clouds(
    paths: Paths, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("NMPI_DEVSTACK_HOME", str(paths.home))
    regions.remember(paths, THREE)
    assert cli.main(["env"]) == 0
    out = capsys.readouterr().out
    assert f"export OS_CLIENT_CONFIG_FILE={paths.clouds_yaml}" in out
    assert "lab-castor, lab-jusuf, lab-witness (user lab)" in out


def test_chaos_knows_the_witness() -> None:
    assert chaos._region("witness").external_cidr == a.REGIONS["witness"].external_cidr
    assert chaos.cut_chain_names("witness")[0] == "NMPILAB-CUT-witness"


# --- what a set of regions means -------------------------------------------------------------


def test_process_table_has_the_same_services_in_each_region(paths: Paths) -> None:
    two = services.table(paths, "nmpi-lab-netagent", regions.specs(regions.DEFAULT))
    three = services.table(paths, "nmpi-lab-netagent", regions.specs(THREE))
    assert not [p for p in two if p.spec.group == "witness"]
    per_region = {
        r: sorted(p.spec.name.removeprefix(f"{r}-") for p in three if p.spec.group == r)
        for r in THREE
    }
    assert per_region["witness"] == per_region["castor"] == per_region["jusuf"]
    assert "nova-compute" in per_region["witness"]
    assert "cinder-volume" in per_region["witness"]
    assert len(three) - len(two) == len(per_region["witness"])
    api = next(p for p in three if p.spec.name == "witness-nova-api")
    assert api.spec.check_desc == "http://127.0.0.3:8774/"
    tiers = [services.TIERS.index(p.tier) for p in three]
    assert tiers == sorted(tiers)


def test_databases_are_the_regions_own_and_every_plan_region_has_a_vhost() -> None:
    two, three = configs.databases(regions.DEFAULT), configs.databases(THREE)
    assert not [d for d in two if d.endswith("_witness")]
    assert sorted(set(three) - set(two)) == sorted(configs.region_databases("witness"))
    assert "nova_cell0_witness" in three
    assert "cinder_witness" in three
    assert configs.vhosts() == ["shared", *THREE]


def test_clouds_yaml_has_a_cloud_per_region_and_admin_in_all(paths: Paths) -> None:
    clouds = keystone.clouds_yaml(SECRETS, regions.specs(THREE))["clouds"]
    assert list(clouds) == ["lab-castor", "lab-jusuf", "lab-witness", "lab-admin"]
    assert clouds["lab-witness"]["region_name"] == "witness"
    assert clouds["lab-witness"]["auth"]["username"] == "lab"
    assert clouds["lab-admin"]["regions"] == list(THREE)
    two = keystone.clouds_yaml(SECRETS, regions.specs(regions.DEFAULT))["clouds"]
    assert "lab-witness" not in two
    assert two["lab-admin"]["regions"] == ["castor", "jusuf"]
    keystone.write_clouds_yaml(paths, SECRETS, regions.specs(THREE))
    assert paths.clouds_yaml.stat().st_mode & 0o777 == 0o600
    written = yaml.safe_load(paths.clouds_yaml.read_text())
    assert written["clouds"]["lab-admin"]["regions"] == list(THREE)


def test_a_new_set_of_regions_changes_the_catalog_and_seed_fingerprints() -> None:
    two, three = regions.specs(regions.DEFAULT), regions.specs(THREE)
    assert keystone.desired_state(SECRETS, two) != keystone.desired_state(SECRETS, three)
    assert seed.fingerprint(two) != seed.fingerprint(three)
    assert keystone.desired_state(SECRETS, three) == keystone.desired_state(SECRETS, three)


def test_witness_configuration_binds_its_own_address(paths: Paths) -> None:
    for project in ("nova", "designate"):  # the api-paste.ini files the wheels ship
        shipped = paths.venv / "etc" / project / "api-paste.ini"
        shipped.parent.mkdir(parents=True)
        shipped.write_text(f"# {project}\n")
    configs.Renderer(paths, SECRETS, SETTINGS, regions.specs(THREE)).render_all()
    witness = paths.conf("witness")
    assert "http-socket = 127.0.0.3:8774" in (witness / "nova" / "uwsgi.ini").read_text()
    assert "http-socket = 127.0.0.3:9696" in (witness / "neutron" / "uwsgi.ini").read_text()
    assert "http-socket = 127.0.0.3:8776" in (witness / "cinder" / "uwsgi.ini").read_text()
    assert "http-socket = 127.0.0.3:8778" in (witness / "placement" / "uwsgi.ini").read_text()
    compute = (witness / "nova" / "nova-compute.conf").read_text()
    assert "host = witness-compute" in compute
    assert "region = witness" in compute
    assert "15673/witness" in compute  # its own RabbitMQ vhost
    assert "/nova_witness?" in (witness / "nova" / "nova.conf").read_text()
    neutron = (witness / "neutron" / "neutron.conf").read_text()
    assert "/neutron_witness?" in neutron
    assert "region = witness" in neutron
    definitions = (paths.conf("rabbitmq") / "definitions.json").read_text()
    assert '"witness"' in definitions

    other = Paths(paths.home.parent / "two")
    for project in ("nova", "designate"):
        (other.venv / "etc" / project).mkdir(parents=True)
        (other.venv / "etc" / project / "api-paste.ini").write_text("#\n")
    configs.Renderer(other, SECRETS, SETTINGS, regions.specs(regions.DEFAULT)).render_all()
    assert not other.conf("witness").exists()
    # the broker's vhosts do not depend on the set: adding a region never restarts it
    assert (other.conf("rabbitmq") / "definitions.json").read_text() == definitions


# --- Keystone's catalog follows the set --------------------------------------------------------


@dataclass
class FakeIdentity:
    """The part of openstacksdk's identity proxy that ensure_catalog uses."""

    region_ids: set[str] = field(default_factory=set)
    endpoint_list: list[SimpleNamespace] = field(default_factory=list)
    service_list: list[SimpleNamespace] = field(default_factory=list)
    ids: Iterator[int] = field(default_factory=itertools.count)

    def regions(self) -> list[SimpleNamespace]:
        return [SimpleNamespace(id=r) for r in sorted(self.region_ids)]

    def create_region(self, id: str, description: str) -> None:
        self.region_ids.add(id)

    def delete_region(self, region: str) -> None:
        assert not [e for e in self.endpoint_list if e.region_id == region], "endpoints remain"
        self.region_ids.discard(region)

    def services(self) -> list[SimpleNamespace]:
        return list(self.service_list)

    def create_service(self, **kw: str) -> SimpleNamespace:
        service = SimpleNamespace(id=f"s{next(self.ids)}", **kw)
        self.service_list.append(service)
        return service

    def endpoints(self) -> list[SimpleNamespace]:
        return list(self.endpoint_list)

    def create_endpoint(self, **kw: str) -> None:
        self.endpoint_list.append(SimpleNamespace(id=f"e{next(self.ids)}", **kw))

    def update_endpoint(self, endpoint: SimpleNamespace, url: str) -> None:
        endpoint.url = url

    def delete_endpoint(self, endpoint: SimpleNamespace) -> None:
        self.endpoint_list.remove(endpoint)

    def find_domain(self, name: str) -> SimpleNamespace:
        return SimpleNamespace(id="default")

    def roles(self) -> list[SimpleNamespace]:
        return []

    def create_role(self, name: str) -> SimpleNamespace:
        return SimpleNamespace(name=name)

    def find_project(self, name: str, domain_id: str) -> SimpleNamespace:
        return SimpleNamespace(id=name)

    def find_user(self, name: str, domain_id: str) -> SimpleNamespace:
        return SimpleNamespace(id=name)

    def update_user(self, user: SimpleNamespace, password: str) -> None:
        pass

    def assign_project_role_to_user(self, *args: Any) -> None:
        pass

    def urls(self, region: str) -> set[str]:
        return {e.url for e in self.endpoint_list if e.region_id == region}


def test_catalog_gains_and_loses_the_witness() -> None:
    ident = FakeIdentity(region_ids={"RegionOne"})
    ident.endpoint_list.append(
        SimpleNamespace(
            id="x", service_id="s", region_id="RegionOne", interface="public", url="http://x"
        )
    )
    conn: Any = SimpleNamespace(identity=ident)
    keystone.ensure_catalog(conn, SECRETS, regions.specs(THREE))
    assert ident.region_ids == {"RegionOne", *THREE}
    assert "http://127.0.0.3:8774/v2.1" in ident.urls("witness")
    assert "http://127.0.0.1:5000/v3" in ident.urls("witness")  # Keystone: shared
    assert "http://127.0.0.1:9292" in ident.urls("witness")  # Glance: shared
    per_region = len(keystone.CATALOG) * len(keystone.INTERFACES)
    assert len(ident.urls("witness")) == len(keystone.CATALOG) - 1  # cinder's two share a URL
    assert len([e for e in ident.endpoint_list if e.region_id == "witness"]) == per_region

    keystone.ensure_catalog(conn, SECRETS, regions.specs(regions.DEFAULT))
    assert ident.region_ids == {"RegionOne", "castor", "jusuf"}  # not the lab's: left alone
    assert not ident.urls("witness")
    assert ident.urls("RegionOne") == {"http://x"}
    assert len([e for e in ident.endpoint_list if e.region_id == "castor"]) == per_region


# --- schemas: the first region migrates, new empty ones get copies -----------------------------


class FakeRunner(schemas.SchemaRunner):
    def __init__(self, paths: Paths, markers: Markers) -> None:
        super().__init__(paths, markers, Progress(io.StringIO()), self.fake_manage, None)  # type: ignore[arg-type]
        self.migrated: list[str] = []
        self.copied: list[str] = []

    def fake_manage(self, log: str, *argv: Any, ok_codes: tuple[int, ...] = (0,)) -> str:
        return ""

    def migrate(self, sync: schemas.SchemaSync) -> None:
        self.migrated.append(sync.name)
        self.done(sync, "migrated")

    def copy(self, source: schemas.SchemaSync, sync: schemas.SchemaSync) -> None:
        self.copied.append(sync.name)
        self.done(sync, f"copied from {source.name}")


def _plan(paths: Paths, names: tuple[str, ...]) -> list[schemas.SchemaSync]:
    renderer = configs.Renderer(paths, SECRETS, SETTINGS, regions.specs(names))
    return schemas.plan(paths, renderer, regions.specs(names))


def test_cold_start_migrates_the_first_region_and_copies_the_others(
    paths: Paths, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(infra, "databases_empty", lambda paths, names: True)
    runner = FakeRunner(paths, Markers(paths, {}))
    runner.run(_plan(paths, THREE))
    castor = [f"castor-{s}" for s in ("placement", "nova", "neutron", "cinder")]
    assert sorted(runner.migrated) == sorted(["glance", "designate", *castor])
    assert sorted(runner.copied) == sorted(
        f"{r}-{s}" for r in ("jusuf", "witness") for s in ("placement", "nova", "neutron", "cinder")
    )


def test_a_region_added_to_a_lab_in_use_is_migrated_in_place(
    paths: Paths, monkeypatch: pytest.MonkeyPatch
) -> None:
    runner = FakeRunner(paths, Markers(paths, {}))
    monkeypatch.setattr(infra, "databases_empty", lambda paths, names: True)
    runner.run(_plan(paths, regions.DEFAULT))
    runner.migrated.clear()
    runner.copied.clear()
    # castor has data now; only witness is new
    monkeypatch.setattr(
        infra, "databases_empty", lambda paths, names: all(n.endswith("_witness") for n in names)
    )
    runner.run(_plan(paths, THREE))
    assert sorted(runner.migrated) == sorted(
        f"witness-{s}" for s in ("placement", "nova", "neutron", "cinder")
    )
    assert runner.copied == []


# --- removing a region from a lab --------------------------------------------------------------


@dataclass
class FakeContainer:
    name: str
    labels: dict[str, str]


class FakeDocker:
    """containers.list / networks.list with label filters, as docker-py's client has them."""

    def __init__(self, containers: list[FakeContainer]) -> None:
        self._containers = containers
        self.containers = SimpleNamespace(list=self.list_containers)
        self.networks = SimpleNamespace(list=lambda filters: [])

    def list_containers(self, all: bool, filters: dict[str, Any]) -> list[FakeContainer]:
        wanted = filters["label"] if isinstance(filters["label"], list) else [filters["label"]]

        def matches(c: FakeContainer) -> bool:
            for label in wanted:
                key, _, value = label.partition("=")
                if key not in c.labels or (value and c.labels[key] != value):
                    return False
            return True

        return [c for c in self._containers if matches(c)]


def _instance(region: str, name: str) -> FakeContainer:
    labels = {
        "nmpi.lab": "1",
        "nmpi.lab.region": region,
        "nmpi.lab.instance-uuid": f"uuid-{name}",
        "nmpi.lab.instance-name": name,
    }
    return FakeContainer(f"nmpilab-{region}-uuid-{name}", labels)


def test_dropped_regions_are_those_that_left_something(paths: Paths) -> None:
    lab = Lab(paths, SETTINGS, io.StringIO(), regions.DEFAULT)
    assert lab.dropped_regions(FakeDocker([])) == []
    assert lab.dropped_regions(FakeDocker([_instance("witness", "w1")])) == ["witness"]
    paths.region_data("witness", "nova").mkdir(parents=True)
    assert lab.dropped_regions(FakeDocker([])) == ["witness"]
    three = Lab(paths, SETTINGS, io.StringIO(), THREE)
    assert three.dropped_regions(FakeDocker([_instance("witness", "w1")])) == []


def test_removing_a_region_with_instances_is_refused_unless_forced(paths: Paths) -> None:
    out = io.StringIO()
    lab = Lab(paths, SETTINGS, out, regions.DEFAULT)
    docker = FakeDocker([_instance("witness", "w1"), _instance("castor", "c1")])
    with pytest.raises(LabError) as refused:
        lab.check_dropped(docker, ["witness"], force=False)
    message = str(refused.value)
    assert "region witness has 1 instance(s) (w1)" in message
    assert "nmpi-devstack up --regions castor,jusuf,witness" in message
    assert "--force" in message
    volumes = paths.region_data("witness", "volumes")
    volumes.mkdir(parents=True)
    (volumes / "volume-1.img").write_bytes(b"")
    with pytest.raises(LabError, match=r"\(w1\) and 1 volume\(s\)"):
        lab.check_dropped(docker, ["witness"], force=False)
    lab.check_dropped(docker, ["witness"], force=True)
    assert "--force: region witness is removed with its 1 instance(s)" in out.getvalue()
    lab.check_dropped(FakeDocker([_instance("castor", "c1")]), ["jusuf"], force=False)


def test_every_region_that_would_lose_instances_is_named_at_once(paths: Paths) -> None:
    lab = Lab(paths, SETTINGS, io.StringIO(), ("castor",))
    docker = FakeDocker([_instance("witness", "w1"), _instance("jusuf", "j1")])
    with pytest.raises(LabError) as refused:
        lab.check_dropped(docker, ["jusuf", "witness"], force=False)
    message = str(refused.value)
    assert "region jusuf has 1 instance(s) (j1); region witness has 1 instance(s) (w1)" in message
    assert "keep them: nmpi-devstack up --regions castor,jusuf,witness" in message
    assert "nmpi-devstack up --force --regions castor" in message


def test_up_refuses_before_remembering_the_new_set(
    paths: Paths, monkeypatch: pytest.MonkeyPatch
) -> None:
    regions.remember(paths, THREE)
    monkeypatch.setattr(infra, "docker_client", lambda: FakeDocker([_instance("witness", "w")]))
    lab = Lab(paths, SETTINGS, io.StringIO(), regions.DEFAULT)
    with pytest.raises(LabError, match="region witness has 1 instance"):
        lab.up()
    assert regions.current(paths) == THREE
