"""`python -m vodedge.cli`."""

from vodedge.cli import main

raise SystemExit(main())
