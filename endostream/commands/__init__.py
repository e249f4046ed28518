"""One module per ``endostream`` subcommand: ``configure_parser(parser)`` and ``run(args)``."""
