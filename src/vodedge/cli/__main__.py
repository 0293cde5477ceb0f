"""`python -m vodedge.cli`."""

from vodedge.cli import console_main

console_main()
