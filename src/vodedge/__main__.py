"""`python -m vodedge`."""

from vodedge.cli import main

raise SystemExit(main())
