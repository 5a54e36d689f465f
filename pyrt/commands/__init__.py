"""One module per command: `pyrt VERB` imports pyrt.commands.VERB (cli.py's table) and calls its
main(g, opts, args). Each imports what its command needs, when it needs it: `pyrt state` loads
none of what `create` does (python -X importtime)."""
