"""``python -m mux`` runs the command line."""

from mux.cli import main

raise SystemExit(main())
