"""Client-side commands: talk to a running server over its HTTP API."""


def add_client_flags(parser):
    pass


def add_commands(sub, formatter):
    pass
