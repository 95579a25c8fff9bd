"""The modules name their entries on every call through one shared keys object per set of
names (``cached_keys``, ``keys_from``); sharing must never hand back another set's object."""

from __future__ import annotations

from dataclasses import dataclass

from torchrl_functional.modules._common import cached_keys, keys_from


@dataclass(frozen=True)
class _Keys:
    value: object = "state_value"
    reward: object = "reward"


@dataclass
class _TensorKeys:  # a TorchRL module's ``tensor_keys``: mutable, set_keys writes in place
    value: object = "state_value"
    reward: object = "reward"
    other: object = "not ours"


def test_one_object_per_set_of_names():
    a = cached_keys(_Keys, value=("agents", "v"))
    assert cached_keys(_Keys, value=("agents", "v")) is a
    assert cached_keys(_Keys, value="v") is not a


def test_a_list_of_keys_is_not_the_nested_key_of_the_same_names():
    nested = cached_keys(_Keys, value=("agents", "v"))
    listed = cached_keys(_Keys, value=["agents", "v"])
    assert nested.value == ("agents", "v") and listed.value == ["agents", "v"]
    assert cached_keys(_Keys, value=["agents", "v"]) is listed


def test_keys_from_reads_the_shared_fields_and_follows_set_keys():
    tk = _TensorKeys()
    keys = keys_from(tk, _Keys, reward=("private", "reward"))
    assert (keys.value, keys.reward) == ("state_value", ("private", "reward"))
    tk.value = ("next", "renamed")  # what set_keys does
    assert keys_from(tk, _Keys).value == ("next", "renamed")
    assert keys_from(tk, _Keys).reward == "reward"


def test_keys_from_with_a_list_of_keys_and_one_shared_field():
    tk = _TensorKeys(value=["agents", "v"])
    listed = keys_from(tk, _Keys)
    assert listed.value == ["agents", "v"] and keys_from(tk, _Keys) is listed
    tk.value = ("agents", "v")
    assert keys_from(tk, _Keys).value == ("agents", "v") and keys_from(tk, _Keys) is not listed

    @dataclass(frozen=True)
    class _One:
        reward: object = "reward"

    assert keys_from(tk, _One).reward == "reward"
    tk.reward = ("next", "r")
    assert keys_from(tk, _One).reward == ("next", "r")


def test_keys_from_alternating_modules_each_get_their_own_names():
    # two modules of one class with different names, called in turn: the last-used slot misses
    # every time and each still gets its own keys
    a, b = _TensorKeys(value="v_a"), _TensorKeys(value=("agents", "v_b"))
    for _ in range(3):
        assert keys_from(a, _Keys).value == "v_a"
        assert keys_from(b, _Keys).value == ("agents", "v_b")
        assert keys_from(b, _Keys, reward="r").reward == "r" and keys_from(b, _Keys).reward == "reward"
