"""(in progress)"""


def configure_parser(p):
    pass


def run(args):
    return 0
