"""Fixtures of the edge integration tests: real origins and vodedge servers on loopback.

Session scope (one set per xdist worker): the media directory, nginx serving
it, and the fault-injecting origin serving it too. Module scope: vodedge
servers, each with a cache of its own.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from edge_config import Origins, domains
from edge_harness import FaultOrigin, Nginx, Vodedge, running
from edge_media import MediaDir


@pytest.fixture(scope="session")
def media_dir(tmp_path_factory: pytest.TempPathFactory) -> MediaDir:
    """The directory both HTTP origins serve; tests publish files into it."""
    return MediaDir(tmp_path_factory.mktemp("origin-root"))


@pytest.fixture(scope="session")
def origins(media_dir: MediaDir, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Origins]:
    """nginx and the fault origin, both serving `media_dir`, plus a directory origin."""
    work = tmp_path_factory.mktemp("origins")
    # The directory origin's root, with a secret beside it that no URL may reach.
    directory = work / "dir-origin" / "public"
    directory.mkdir(parents=True)
    secret = directory.parent / "secret.txt"
    secret.write_text("the secret next to the origin directory\n")
    (directory / "hello.txt").write_text("hello from the directory origin\n")
    with (
        running(Nginx(media_dir.root, work / "nginx")) as nginx,
        running(FaultOrigin(media_dir.root, work / "faulty")) as fault,
    ):
        yield Origins(nginx, fault, directory, secret, media_dir)


@pytest.fixture(scope="module")
def edge(origins: Origins, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Vodedge]:
    """One vodedge worker serving every test domain, shared by a module's tests."""
    with running(Vodedge(tmp_path_factory.mktemp("vodedge"), domains(origins))) as server:
        yield server
