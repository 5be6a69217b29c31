#!/usr/bin/python
"""Check on the controller that a host presents the SSH host keys recorded for it."""

from __future__ import annotations

import base64
import hashlib

from ansible.module_utils.basic import AnsibleModule

DOCUMENTATION = r"""
module: cloud_server_host_key_check
short_description: Check that a host presents the SSH host keys recorded at provisioning
description:
  - Asks the host for its public SSH host keys (ssh-keyscan, of the types recorded) and fails,
    with a message naming the host and what to do, when any of them differs from the keys
    recorded for it. Runs on the controller before Ansible connects, so a changed key stops the
    run with that message instead of SSH's own. Never changes anything.
options:
  name:
    description: The host's name, for the messages.
    type: str
    required: true
  address:
    description: Address the host is reached at.
    type: str
    required: true
  port:
    description: SSH port.
    type: int
    default: 22
  recorded:
    description: The recorded keys, each "type base64".
    type: list
    elements: str
    required: true
  known_hosts:
    description: The known_hosts file the keys are recorded in (for the messages).
    type: str
    required: true
  instance:
    description: The instance's ID (for the messages).
    type: str
    default: ""
  timeout:
    description: Seconds ssh-keyscan waits for the host.
    type: int
    default: 30
author: nmpi-infra
"""

RETURN = r"""
presented:
  description: The keys the host presented, each "type base64".
  returned: success
  type: list
  elements: str
"""


def fingerprint(key: str) -> str:
    """OpenSSH's SHA256 fingerprint of "type base64"."""
    kind, blob = key.split()[:2]
    digest = hashlib.sha256(base64.b64decode(blob)).digest()
    return f"{kind} SHA256:{base64.b64encode(digest).decode().rstrip('=')}"


def main() -> None:
    module = AnsibleModule(
        argument_spec=dict(
            name=dict(type="str", required=True),
            address=dict(type="str", required=True),
            port=dict(type="int", default=22),
            recorded=dict(type="list", elements="str", required=True),
            known_hosts=dict(type="str", required=True),
            instance=dict(type="str", default=""),
            timeout=dict(type="int", default=30),
        ),
        supports_check_mode=True,
    )
    params = module.params
    recorded = sorted({" ".join(key.split()[:2]) for key in params["recorded"]})
    types = sorted({key.split()[0] for key in recorded})
    keyscan = module.get_bin_path("ssh-keyscan", required=True)
    argv = [keyscan, "-T", str(params["timeout"]), "-p", str(params["port"])]
    argv += ["-t", ",".join(types), params["address"]]
    rc, out, err = module.run_command(argv)
    presented = sorted(
        {
            " ".join(line.split()[1:3])
            for line in out.splitlines()
            if line and not line.startswith("#") and len(line.split()) >= 3
        }
    )
    where = f"{params['name']} ({params['address']})"
    if not presented:
        module.fail_json(
            msg=f"{where} presented no SSH host key of the types recorded for it"
            f" ({', '.join(types)}): ssh-keyscan exited {rc}: {err.strip()}",
            rc=rc,
        )
    if any(key not in recorded for key in presented):
        instance = f"instance {params['instance']}" if params["instance"] else "the instance"
        console = params["instance"] or params["name"]
        module.fail_json(
            msg=(
                f"The SSH host key of {where} changed since provisioning: it presents"
                f" {'; '.join(fingerprint(key) for key in presented)}, while"
                f" {params['known_hosts']} holds"
                f" {'; '.join(fingerprint(key) for key in recorded)}, recorded from the"
                f" console log of {instance} when it was provisioned. Ansible does not connect to"
                " it. Unless you know why the key changed (someone may be intercepting the"
                f" connection), find out: compare with `openstack console log show {console}`. If"
                " the instance was rebuilt on purpose, delete the block"
                f" '# BEGIN host keys of {params['name']}' ... '# END ...' from"
                f" {params['known_hosts']}; the next run records the keys again from the console"
                " log."
            ),
            presented=presented,
            recorded=recorded,
        )
    module.exit_json(changed=False, presented=presented)


if __name__ == "__main__":
    main()
