"""Kernel names of discovered environments: valid, readable when possible, never shared."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from jupyter_client.kernelspec import _is_valid_kernel_name

from aiinfn_hub.envkernels.names import kernel_name, path_hash


@pytest.mark.parametrize(
    ("relative_path", "expected"),
    [
        ("torch-2.3", "env-managed-torch-2.3"),
        ("root-6.30.sif", "env-managed-root-6.30.sif"),
        ("lhcb_py3.11", "env-managed-lhcb_py3.11"),
    ],
)
def test_a_valid_path_is_the_name_as_it_is(relative_path: str, expected: str) -> None:
    assert kernel_name("env-", "managed", relative_path) == expected


@pytest.mark.parametrize(
    ("relative_path", "readable"),
    [
        ("Torch-2.3", "torch-2.3"),
        ("hep/root", "hep-root"),
        ("my env (old)", "my-env-old"),
        ("ü", "env"),
    ],
)
def test_a_sanitised_path_gets_a_hash(relative_path: str, readable: str) -> None:
    name = kernel_name("env-", "mine", relative_path)
    assert name == f"env-mine-{readable}-{path_hash('mine', relative_path)}"
    assert _is_valid_kernel_name(name)


def test_paths_that_sanitise_alike_get_different_names() -> None:
    names = {kernel_name("env-", "managed", p) for p in ("hep/root", "hep-root", "HEP/root")}
    assert len(names) == 3


def test_a_path_that_looks_hashed_is_hashed_again() -> None:
    hashed = kernel_name("env-", "managed", "hep/root")
    looks_alike = hashed.removeprefix("env-managed-")
    assert kernel_name("env-", "managed", looks_alike) != hashed


def test_the_same_path_in_two_areas_gets_two_names() -> None:
    assert kernel_name("env-", "managed", "torch") != kernel_name("env-", "mine", "torch")


@pytest.mark.parametrize(
    ("prefix", "tag"), [("env-", "my-area"), ("env-", "Managed"), ("Env", "a")]
)
def test_bad_tags_and_prefixes_are_refused(prefix: str, tag: str) -> None:
    with pytest.raises(ValueError, match=r"tag|prefix"):
        kernel_name(prefix, tag, "torch")


paths = st.text(alphabet=st.sampled_from("abcAB09-._/ é"), min_size=1, max_size=14) | st.from_regex(
    r"[a-z0-9]{1,4}-[0-9a-f]{12}", fullmatch=True
)


@given(
    st.sampled_from(["managed", "mine", "cvmfs"]),
    paths,
    st.sampled_from(["managed", "mine"]),
    paths,
)
def test_names_are_valid_and_injective(tag_a: str, path_a: str, tag_b: str, path_b: str) -> None:
    name_a = kernel_name("env-", tag_a, path_a)
    name_b = kernel_name("env-", tag_b, path_b)
    assert _is_valid_kernel_name(name_a)
    assert (name_a == name_b) == ((tag_a, path_a) == (tag_b, path_b))
