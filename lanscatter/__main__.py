"""`python -m lanscatter` is the `lanscatter` command."""

from lanscatter.cli import main

if __name__ == "__main__":
    main()
