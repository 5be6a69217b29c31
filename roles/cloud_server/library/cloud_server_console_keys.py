#!/usr/bin/python
"""The SSH host keys an instance printed on its console at first boot (cloud-init's format)."""

from __future__ import annotations

import re
import time
from typing import Any, ClassVar

from ansible_collections.openstack.cloud.plugins.module_utils.openstack import OpenStackModule

DOCUMENTATION = r"""
module: cloud_server_console_keys
short_description: Read an instance's SSH host keys from its console log
description:
  - Reads the console log of an OpenStack instance and returns the public SSH host keys that
    cloud-init's keys-to-console printed there at the instance's first boot, between the lines
    C(-----BEGIN SSH HOST KEY KEYS-----) and C(-----END SSH HOST KEY KEYS-----) (the last such
    block). The keys come from the cloud's API, not from the network, so they can be trusted
    for the instance's first SSH connection.
  - Waits up to I(timeout) seconds for the block (cloud-init prints it late in its final stage,
    after the instance is ACTIVE), then fails saying so. Never changes anything.
options:
  server:
    description: Name or ID of the instance.
    type: str
    required: true
  timeout:
    description: Seconds to wait for the host keys to appear in the console log.
    type: int
    default: 600
  interval:
    description: Seconds between two reads of the console log.
    type: int
    default: 5
extends_documentation_fragment:
  - openstack.cloud.openstack
author: nmpi-infra
"""

RETURN = r"""
host_keys:
  description: The host's public keys, each "type base64" (no comment), as printed.
  returned: success
  type: list
  elements: str
server_id:
  description: ID of the instance whose console was read.
  returned: success
  type: str
"""

BEGIN = "-----BEGIN SSH HOST KEY KEYS-----"
END = "-----END SSH HOST KEY KEYS-----"
KEY_LINE = re.compile(r"((?:ssh|ecdsa|sk)-[a-z0-9@.-]+) ([A-Za-z0-9+/]+={0,2})(?:\s|$)")


def host_keys(console: str) -> list[str]:
    """The keys of the last complete BEGIN/END SSH HOST KEY KEYS block, [] when there is none."""
    lines = [line.strip() for line in console.replace("\r", "").split("\n")]
    ends = [index for index, line in enumerate(lines) if line.endswith(END)]
    for end in reversed(ends):
        begins = [index for index, line in enumerate(lines[:end]) if line.endswith(BEGIN)]
        if not begins:
            continue
        keys = []
        for line in lines[begins[-1] + 1 : end]:
            match = KEY_LINE.search(line)
            if match:
                keys.append(f"{match.group(1)} {match.group(2)}")
        if keys:
            return keys
    return []


class ConsoleKeysModule(OpenStackModule):
    argument_spec: ClassVar[dict[str, Any]] = dict(
        server=dict(type="str", required=True),
        timeout=dict(type="int", default=600),
        interval=dict(type="int", default=5),
    )
    module_kwargs: ClassVar[dict[str, Any]] = dict(supports_check_mode=True)

    def run(self):
        server = self.conn.compute.find_server(self.params["server"], ignore_missing=True)
        if server is None:
            self.fail_json(msg=f"No instance {self.params['server']} in this cloud.")
        deadline = time.monotonic() + self.params["timeout"]
        while True:
            output = self.conn.compute.get_server_console_output(server)
            keys = host_keys(output.get("output") or "")
            if keys:
                self.exit_json(changed=False, host_keys=keys, server_id=server.id)
            if time.monotonic() >= deadline:
                self.fail_json(
                    msg=(
                        f"The console log of instance {server.name} ({server.id}) shows no SSH"
                        f" host keys after {self.params['timeout']} s: cloud-init prints them at"
                        f" the instance's first boot between the lines {BEGIN} and {END}, and"
                        " provisioning records them to check the host's identity. Read it with"
                        f" `openstack console log show {server.id}`: an image without cloud-init"
                        " (or with emit_keys_to_console: false) does not print them; a console"
                        " log that was rotated no longer holds them. Then verify the host's keys"
                        " out of band and add them to the known_hosts file yourself."
                    ),
                    server_id=server.id,
                )
            time.sleep(self.params["interval"])


def main():
    module = ConsoleKeysModule()
    module()


if __name__ == "__main__":
    main()
