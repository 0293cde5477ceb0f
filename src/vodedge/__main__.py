"""`python -m vodedge`."""

from vodedge.cli import console_main

console_main()
