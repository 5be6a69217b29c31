"""Print how to reach the platform that `make lab` deployed (the end of `make lab`).

    python -m tests.lab.info          # the public URL, the CA file, a three-line nmpi example
    python -m tests.lab.info --json   # the same, for scripts

It reads the deployment (tests/lab/deployment.py) and makes the demo user's token once.
"""

from __future__ import annotations

import argparse
import json
import sys

from tests.lab import deployment


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.lab.info",
        description="How to reach the platform deployed on the local lab by `make lab`.",
        epilog="The public name resolves through the lab's DNS server at the witness; "
        "the host's own resolver does not know it (see the /etc/hosts line printed).",
    )
    parser.add_argument("--json", action="store_true", help="print a JSON object instead")
    args = parser.parse_args(argv)
    try:
        lab = deployment.load()
    except LookupError as exc:
        print(f"lab-info: {exc}", file=sys.stderr)
        return 1
    lab.demo_token()  # made once, kept in the generated folder
    sites = {s: lab.host(s, "web").public_ip for s in ("castor", "jusuf")}
    resolved = lab.resolve()
    token_file = deployment.GENERATED / "demo-token"
    if args.json:
        info = {
            "url": lab.url,
            "ca_file": str(lab.ca_file),
            "dns_server": lab.dns_server.public_ip,
            "public_name_resolves_to": resolved,
            "sites": sites,
            "demo_user": deployment.DEMO_USER,
            "demo_collab": deployment.DEMO_COLLAB,
            "demo_token_file": str(token_file),
        }
        print(json.dumps(info, indent=2))
        return 0
    dns_server = lab.dns_server.public_ip
    client = (
        f'c = nmpi.Client(token=open("{token_file}").read().strip(), '
        f'job_service="{lab.url}", user_info_endpoint="{lab.url}/userinfo")'
    )
    submit = (
        'print(c.get_job(c.submit_job(source="print(\'hello\')", platform="SpiNNaker", '
        f'collab_id="{deployment.DEMO_COLLAB}")))'
    )
    lines = [
        "",
        "The platform is up on the local lab.",
        f"  public URL   {lab.url}   (castor {sites['castor']}, jusuf {sites['jusuf']})",
        f"  CA file      {lab.ca_file}",
        f"  DNS server   {dns_server}   (dig @{dns_server} {lab.public_name})",
        f"  demo token   {token_file}   (user {deployment.DEMO_USER}, "
        f"collab {deployment.DEMO_COLLAB})",
        "",
        "The public name lives in the lab's DNS only; let this machine resolve it, e.g.",
        f'  echo "{(resolved or [sites["castor"]])[0]} {lab.public_name}" >> /etc/hosts',
        "",
        "Submit a job with the nmpi client (.venv/bin/python):",
        f'  import os, nmpi; os.environ["REQUESTS_CA_BUNDLE"] = "{lab.ca_file}"',
        f"  {client}",
        f"  {submit}",
    ]
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
