"""The lab's generated passwords are safe as a command-line argument and in a URL."""

from __future__ import annotations

import re

from nmpi_devstack.credentials import Secrets


def test_passwords_never_start_like_an_option_and_need_no_quoting() -> None:
    # token_urlsafe made one password in 64 start with "-": keystone-manage read it as an option.
    # 2000 draws of 5 passwords miss a 1/64 event with probability ~1e-68.
    for _ in range(2000):
        s = Secrets.generate()
        for password in (s.mariadb, s.rabbitmq, s.admin, s.lab, s.service):
            assert re.fullmatch(r"[A-Za-z0-9]{24}", password), password
