"""``python -m bastion`` is the ``bastion`` command."""

from bastion.cli import app

app(prog_name="bastion")
