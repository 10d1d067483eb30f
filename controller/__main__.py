"""``python -m controller`` runs the ``ferry`` command line."""

from controller.cli.main import main

raise SystemExit(main())
