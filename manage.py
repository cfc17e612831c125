#!/usr/bin/env python
"""Django's command-line utility for Sluice."""
import os
import sys


def main():
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    from django.core.management import execute_from_command_line

    from execution.broker import BadBrokerURL

    try:
        execute_from_command_line(sys.argv)
    except BadBrokerURL as error:  # raised while Django starts, before any command can catch it
        print(f"CommandError: {error}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
