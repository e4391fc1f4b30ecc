from explorer.cli import main

if __name__ == "__main__":  # worker processes import the main module: they must not run the CLI again
    raise SystemExit(main())
