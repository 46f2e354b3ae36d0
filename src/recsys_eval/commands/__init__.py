"""Sub-commands of the CLI. Each module exposes `register(subparsers)`."""
