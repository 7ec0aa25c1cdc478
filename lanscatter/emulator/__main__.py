"""`python -m lanscatter.emulator --cleanup [PREFIX]`: remove a crashed emulation's namespaces."""

from __future__ import annotations

import argparse
import sys

from lanscatter.emulator.netns import cleanup, support_problem


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m lanscatter.emulator", description=__doc__)
    parser.add_argument("--cleanup", nargs="?", const="lsc", metavar="PREFIX", required=True,
                        help="namespace name prefix (default: lsc, every emulation's)")
    args = parser.parse_args()
    problem = support_problem()
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 1
    for name in cleanup(args.cleanup):
        print(f"removed {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
