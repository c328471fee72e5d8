"""Fixtures shared by the in-process host tests."""
import pytest

import hosttools as H


@pytest.fixture(scope="module")
def pack():
    """This repository loaded as a ComfyUI custom-node package (`hosttools.load_pack`, module `moaw_pack`)."""
    return H.load_pack()
