"""The lab hypervisor's cloud-init stand-in (nmpi_lab_openstack.cloud_config), without Docker.

What user data means (parsing, users, write_files, runcmd, warnings) and that the stage
scripts are valid sh whose helpers do what they say. The scripts running inside a real
instance are covered by test_lab_docker_vm.py.
"""

from __future__ import annotations

import base64
import gzip
import subprocess
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from pathlib import Path

import pytest
from nmpi_lab_openstack import cloud_config as cc

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOnmpilabtestkeyxxxxxxxxxxxxxxxxxxxxxxxxxxxx me@host"


def render(user_data: bytes, keys: tuple[str, ...] = (KEY,)) -> cc.InitScripts:
    return cc.render(
        instance_id="0d4c1c36-5d43-4ac3-9f7e-2f1b7a0f6a11",
        default_user_name="debian",
        public_keys=keys,
        user_data=user_data,
    )


def run_sh(script: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "script.sh"
    path.write_text(script)
    return subprocess.run(["sh", str(path)], capture_output=True, text=True, check=False)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


# -- decoding and parsing ------------------------------------------------------------------------


def test_nova_user_data_is_base64_and_may_be_gzipped() -> None:
    raw = b"#cloud-config\nruncmd: [ls]\n"
    assert cc.decode_user_data(b64(raw)) == raw
    assert cc.decode_user_data(b64(gzip.compress(raw))) == raw
    assert cc.decode_user_data(raw.decode()) == raw  # not base64: taken as is
    assert cc.decode_user_data(None) == b""
    assert cc.decode_user_data("") == b""


def test_cloud_config_keeps_supported_keys_and_names_the_others() -> None:
    parsed = cc.parse_user_data(b"#cloud-config\nruncmd: [ls]\nbootcmd: [x]\nchpasswd: {}\n")
    assert parsed.config == {"runcmd": ["ls"]}
    assert parsed.warnings == [
        "cloud-config key 'bootcmd' is not supported by the lab; ignored",
        "cloud-config key 'chpasswd' is not supported by the lab; ignored",
    ]


@pytest.mark.parametrize(
    ("user_data", "expected"),
    [
        (b"#cloud-config\nruncmd: [unclosed\n", "cloud-config is not valid YAML"),
        (b"#cloud-config\n- a\n- b\n", "cloud-config is a list, not a mapping"),
        (b"## template: jinja\n#cloud-config\n", "jinja templates are not supported"),
        (b"#include\nhttp://example.org/x\n", "not #cloud-config, a #! script or MIME"),
        (b"\x00\x01binary", "not #cloud-config, a #! script or MIME"),
    ],
)
def test_user_data_the_lab_cannot_use_is_a_warning_not_a_crash(
    user_data: bytes, expected: str
) -> None:
    parsed = cc.parse_user_data(user_data)
    assert parsed.config == {}
    assert parsed.scripts == []
    assert len(parsed.warnings) == 1
    assert expected in parsed.warnings[0]
    # ...and the instance still gets its default user and key.
    scripts = render(user_data)
    assert "useradd -m -c Debian -s /bin/bash" in scripts.init
    assert f"add_keys debian {b64((KEY + chr(10)).encode())}" in scripts.init


def test_a_shebang_user_data_is_a_script_run_in_the_final_stage() -> None:
    script = b"#!/bin/bash\necho hello > /tmp/x\n"
    parsed = cc.parse_user_data(script)
    assert parsed.scripts == [script]
    assert parsed.warnings == []
    final = render(script).final
    assert f"{cc.SCRIPTS_DIR}/part-001 {b64(script)} 0700" in final
    assert f"(cd / && {cc.SCRIPTS_DIR}/part-001)" in final


def test_mime_multipart_parts_are_merged_and_unknown_types_reported() -> None:
    message = MIMEMultipart()
    message.attach(MIMEText("#cloud-config\nruncmd: [first]\nhostname: one\n", "cloud-config"))
    message.attach(MIMEText("#cloud-config\nruncmd: [second]\n", "cloud-config"))
    message.attach(MIMEText("#!/bin/sh\necho part\n", "x-shellscript"))
    message.attach(MIMEText("#cloud-boothook\necho x\n", "cloud-boothook"))
    parsed = cc.parse_user_data(message.as_bytes())
    assert parsed.config == {"runcmd": ["second"], "hostname": "one"}
    assert parsed.scripts == [b"#!/bin/sh\necho part\n"]
    assert parsed.warnings == [
        "MIME part 4 (text/cloud-boothook): content type not supported; ignored"
    ]


# -- users ---------------------------------------------------------------------------------------


def test_without_users_the_default_user_gets_the_key_sudo_and_bash() -> None:
    warnings: list[str] = []
    (user,) = cc.resolve_users({}, "debian", [KEY], warnings)
    assert user == cc.User(
        name="debian",
        gecos="Debian",
        groups=cc.DEFAULT_USER_GROUPS,
        shell="/bin/bash",
        sudo=("ALL=(ALL) NOPASSWD:ALL",),
        keys=(KEY,),
    )
    assert warnings == []


def test_users_default_expands_and_others_follow_in_order() -> None:
    warnings: list[str] = []
    config = {
        "ssh_authorized_keys": ["ssh-rsa EXTRA extra"],
        "users": [
            "default",
            {
                "name": "alice",
                "groups": "docker, adm",
                "sudo": ["ALL=(ALL) NOPASSWD:ALL"],
                "shell": "/bin/zsh",
                "ssh_authorized_keys": ["ssh-ed25519 ALICE alice"],
                "uid": "2001",
                "passwd": "$6$x",
            },
            "bob",
            {"name": "svc", "system": True, "no_create_home": True, "sudo": False},
        ],
    }
    default, alice, bob, svc = cc.resolve_users(config, "debian", [KEY], warnings)
    assert default.name == "debian"
    assert default.keys == (KEY, "ssh-rsa EXTRA extra")
    assert alice == cc.User(
        name="alice",
        groups=("docker", "adm"),
        shell="/bin/zsh",
        sudo=("ALL=(ALL) NOPASSWD:ALL",),
        keys=("ssh-ed25519 ALICE alice",),
        uid=2001,
    )
    assert bob == cc.User(name="bob")
    assert svc == cc.User(name="svc", system=True, no_create_home=True)
    assert warnings == ["users[1]: key 'passwd' is not supported by the lab; ignored"]


def test_users_without_default_leave_the_key_pair_out_and_say_so() -> None:
    warnings: list[str] = []
    users = cc.resolve_users({"users": "alice, bob"}, "debian", [KEY], warnings)
    assert [u.name for u in users] == ["alice", "bob"]
    assert all(not u.keys for u in users)
    assert warnings == [
        "users: does not list 'default': no default user, so the instance's key pair is"
        " not installed (as with cloud-init)"
    ]


def test_user_lines_create_or_update_the_user() -> None:
    lines = "\n".join(
        cc._user_lines(cc.User(name="alice", groups=("docker",), shell="/bin/sh", uid=1500))
    )
    assert "ensure_group docker" in lines
    assert "if getent passwd alice >/dev/null; then" in lines
    assert "usermod -a -G docker alice" in lines
    assert "useradd -m -s /bin/sh -U -u 1500 -G docker alice" in lines


# -- write_files, runcmd, packages, hostname -------------------------------------------------------


def test_write_files_encodings_permissions_and_defer() -> None:
    warnings: list[str] = []
    entries = [
        {"path": "/etc/a", "content": "plain\n"},
        {"path": "/etc/b", "content": b64(b"bin\x00"), "encoding": "b64", "permissions": "0600"},
        {
            "path": "/etc/c",
            "content": b64(gzip.compress(b"zipped")),
            "encoding": "gzip+base64",
            "permissions": 0o750,
            "owner": "debian:debian",
            "append": True,
        },
        {"path": "/etc/d", "content": "later", "defer": True},
        {"path": "relative", "content": "x"},
        {"path": "/etc/e", "content": "!!!", "encoding": "base64"},
        {"path": "/etc/f", "source": {"uri": "http://x"}},
    ]
    init, final = cc._write_files_lines(entries, warnings)
    assert init == [
        f"write_file /etc/a {b64(b'plain' + chr(10).encode())} 0644 root:root 0",
        f"write_file /etc/b {b64(b'bin' + bytes(1))} 0600 root:root 0",
        f"write_file /etc/c {b64(b'zipped')} 0750 debian:debian 1",
        "write_file /etc/f '' 0644 root:root 0",
    ]
    assert final == [f"write_file /etc/d {b64(b'later')} 0644 root:root 0"]
    assert warnings[0] == "write_files[4]: path 'relative' is not absolute; ignored"
    assert warnings[1].startswith("write_files[5]: content is not valid base64")
    assert warnings[2] == "write_files[6]: key 'source' is not supported by the lab; ignored"


def test_runcmd_is_one_script_of_shell_lines_and_quoted_argvs() -> None:
    warnings: list[str] = []
    script = cc._runcmd_script(
        ["cd /opt", ["touch", "a file"], ["echo", "$HOME", 3], {"bad": 1}], warnings
    )
    assert script == "#!/bin/sh\ncd /opt\ntouch 'a file'\necho '$HOME' 3\n"
    assert warnings == ["runcmd[3]: a command is a string or a list of strings; ignored"]


def test_packages_update_then_install() -> None:
    warnings: list[str] = []
    lines = cc._packages_lines({"packages": ["curl", ["jq", "1.6-2"], 3.5j]}, warnings)
    assert "run 'apt-get update'" in lines[1]
    assert lines[-1].endswith("install --no-install-recommends curl jq=1.6-2")
    assert warnings == ["packages[2]: a package is a name or [name, version]; ignored"]
    assert cc._packages_lines({}, warnings) == []


def test_hostname_and_fqdn() -> None:
    warnings: list[str] = []
    lines = "\n".join(cc._hostname_lines({"hostname": "web", "fqdn": "web.lab.example"}, warnings))
    assert "hostname web" in lines
    assert "127.0.1.1 web.lab.example web" in lines
    assert "/etc/nmpi-lab/hostname" in lines
    assert warnings == []


# -- the rendered scripts --------------------------------------------------------------------

USER_DATA = b"""#cloud-config
users:
  - default
  - name: alice
    sudo: ALL=(ALL) NOPASSWD:ALL
    ssh_authorized_keys: [ssh-ed25519 AAAA alice]
write_files:
  - path: /etc/nmpi/one
    content: one
  - path: /etc/nmpi/two
    content: two
    defer: true
runcmd:
  - echo ran > /tmp/ran
packages: [jq]
final_message: all done
swap: {size: 1G}
"""


def test_stages_are_valid_sh_and_in_cloud_init_order() -> None:
    scripts = render(USER_DATA)
    for script in (scripts.init, scripts.final):
        check = subprocess.run(["sh", "-n"], input=script, text=True, capture_output=True)
        assert check.returncode == 0, check.stderr
    init = scripts.init
    # Warnings first, then write_files, users (default first), sudoers check, done marker.
    order = [
        "warn 'cloud-config key '\"'\"'swap'\"'\"' is not supported",
        "write_file /etc/nmpi/one",
        "useradd debian",
        "add_keys debian",
        "useradd alice",
        "add_keys alice",
        f"visudo -c -q -f {cc.SUDOERS_FILE}",
        f"touch {cc.INIT_DONE}",
    ]
    positions = [init.index(marker) for marker in order]
    assert positions == sorted(positions)
    assert "/etc/nmpi/two" not in init
    final = scripts.final
    order = [
        "apt-get update",
        "install --no-install-recommends jq",
        "write_file /etc/nmpi/two",
        "scripts-user: running runcmd",
        cc.BOOT_FINISHED,
        "log 'all done'",
        f"touch {cc.FINAL_DONE}",
    ]
    positions = [final.index(marker) for marker in order]
    assert positions == sorted(positions)
    assert scripts.warnings == ("cloud-config key 'swap' is not supported by the lab; ignored",)


def test_write_file_helper_writes_appends_and_sets_modes(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "file"
    script = "\n".join(
        [
            "PREFIX=nmpi-lab-init",
            cc._PRELUDE,
            f"write_file {target} {b64(b'first')} 0600 $(id -u):$(id -g) 0",
            f"write_file {target} {b64(b'+second')} 0640 $(id -u):$(id -g) 1",
            f"write_file {target}/below-a-file {b64(b'x')} 0600 root:root 0",
            'echo "errors=$ERRORS"',
        ]
    )
    result = run_sh(script, tmp_path)
    assert target.read_bytes() == b"first+second"
    assert oct(target.stat().st_mode & 0o777) == "0o640"
    assert f"nmpi-lab-init: write_files: {target}" in result.stdout
    assert "errors=1" in result.stdout


def test_run_helper_counts_failures_and_goes_on(tmp_path: Path) -> None:
    script = "\n".join(
        [
            "PREFIX=nmpi-lab-init",
            cc._PRELUDE,
            "run 'first' false",
            "run 'second' true",
            "run 'third' sh -c 'exit 3'",
            'echo "errors=$ERRORS"',
        ]
    )
    result = run_sh(script, tmp_path)
    assert "nmpi-lab-init: ERROR: first: exit status 1" in result.stdout
    assert "nmpi-lab-init: ERROR: third: exit status 3" in result.stdout
    assert "errors=2" in result.stdout


def test_cloud_init_shim_is_valid_sh() -> None:
    check = subprocess.run(["sh", "-n"], input=cc.CLOUD_INIT_SHIM, text=True, capture_output=True)
    assert check.returncode == 0, check.stderr


def test_final_stage_prints_the_host_keys_as_cloud_init_does(tmp_path: Path) -> None:
    # keys-to-console after the user's scripts, before boot-finished: what provisioning reads
    # from the console log (roles/cloud_server) to record the instance's host keys.
    final = render(USER_DATA).final
    assert final.index("scripts-user: running runcmd") < final.index(cc.KEYS_TO_CONSOLE[0])
    assert final.index(cc.KEYS_TO_CONSOLE[-1]) < final.index(cc.BOOT_FINISHED)
    for kind in ("ed25519", "ecdsa"):
        key = tmp_path / f"ssh_host_{kind}_key"
        subprocess.run(["ssh-keygen", "-q", "-t", kind, "-N", "", "-f", str(key)], check=True)
    block = "\n".join(cc.KEYS_TO_CONSOLE).replace("/etc/ssh/", f"{tmp_path}/")
    out = subprocess.run(["sh", "-c", block], capture_output=True, text=True, check=True).stdout
    lines = out.splitlines()
    assert lines[lines.index("ec2: -----BEGIN SSH HOST KEY FINGERPRINTS-----") + 1].endswith(
        "(ECDSA)"
    )
    keys = lines[lines.index("-----BEGIN SSH HOST KEY KEYS-----") + 1 : -1]
    assert lines[-1] == "-----END SSH HOST KEY KEYS-----"
    assert keys == [
        (tmp_path / f"ssh_host_{kind}_key.pub").read_text().strip() for kind in ("ecdsa", "ed25519")
    ]
